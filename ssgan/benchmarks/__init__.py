"""Benchmarks that print figures (``python -m ssgan.bench``): ratios measured side by side
in one run, because these machines are noisy."""
