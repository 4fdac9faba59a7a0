"""What dropout's masks cost in one training step, side by side in one process.

Three discriminators at the default model and batch, timed in alternating rounds (best
of each): Keras' masks (``model.dropout_mask=uniform``, a float32 uniform per element),
``model.dropout_mask=byte`` (one random byte per element) and no dropout at all
(``model.drop_rate=0``: the bound on what any mask can save). Prints ms/step, images/s
and the step's share of this machine's float32 matmul peak, as ``ssgan.bench`` measures it.

    python experiments/step_timing/dropout_mask.py [--batch 128] [--steps 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ssgan.runtime import start_tensorflow

start_tensorflow()  # quietly, the allocator set first, before the imports below load it

from ssgan.benchmarks.machine import matmul_peak_flops  # noqa: E402
from ssgan.config import ModelConfig, TrainConfig  # noqa: E402
from ssgan.method_config import FeatureMatchingMethod  # noqa: E402
from ssgan.methods.gan import FeatureMatchingGAN  # noqa: E402

VARIANTS = {
    "uniform (default)": {},
    "byte": {"dropout_mask": "byte"},
    "no dropout (bound)": {"drop_rate": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import tensorflow as tf  # after ssgan: the package imports it without its log lines

    rng = np.random.default_rng(0)
    images = lambda: tf.constant(rng.uniform(-1, 1, (args.batch, 32, 32, 3)), tf.float32)  # noqa: E731
    batch = (images(), tf.constant(rng.integers(0, 10, args.batch)), images())
    train = TrainConfig()
    gans = {}
    for name, changes in VARIANTS.items():
        gan = FeatureMatchingGAN(ModelConfig(**changes), train, FeatureMatchingMethod())
        gan.train_step(batch)["d_loss"].numpy()  # trace
        gans[name] = gan
    best = dict.fromkeys(gans, float("inf"))
    for _ in range(args.rounds):
        for name, gan in gans.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                out = gan.train_step(batch)
            out["d_loss"].numpy()  # waits for the last step
            best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
    peak = matmul_peak_flops()
    flops = gans["uniform (default)"].step_flops(args.batch)
    base = best["uniform (default)"]
    print(f"tutorial model, batch {args.batch}; best of {args.rounds} x {args.steps} steps; "
          f"float32 matmul peak {peak / 1e9:.0f} GFLOP/s")  # fmt: skip
    print(f"{'dropout':<20}{'ms/step':>9}{'images/s':>10}{'of peak':>9}{'speed-up':>10}")
    for name, seconds in best.items():
        print(
            f"{name:<20}{1000 * seconds:>9.1f}{args.batch / seconds:>10.0f}"
            f"{flops / seconds / peak:>9.0%}{base / seconds:>10.2f}"
        )


if __name__ == "__main__":
    main()
