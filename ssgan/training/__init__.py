"""One training run: its lifecycle and resume policy, the training loop, job signals and
distribution strategies."""
