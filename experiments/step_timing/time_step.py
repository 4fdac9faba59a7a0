"""Time one compiled training step of the default tutorial model on this machine.

Variants, each in a fresh process (the precision policy is global): plain tf.function
vs jit_compile=True (XLA), fp32 vs bf16. Prints ms/step and images/s, where one step
reads a labelled and an unlabelled batch of ``--batch`` images each.

    python experiments/step_timing/time_step.py [--batch 128] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

VARIANTS = (
    ("fp32", False),
    ("fp32", True),
    ("bf16", False),
    ("bf16", True),
)

CHILD = """
import json, sys, time
from ssgan.runtime import start_tensorflow; start_tensorflow()
import numpy as np, tensorflow as tf
from ssgan.config import ModelConfig, TrainConfig
from ssgan.training.distribute import make_strategy
from ssgan.models.gan import SemiSupervisedGAN
precision, jit, batch, steps, rounds = sys.argv[1], sys.argv[2] == "1", *map(int, sys.argv[3:6])
model = ModelConfig()
train = TrainConfig(precision=precision, jit_compile=jit)
gan = SemiSupervisedGAN(model, train, make_strategy(train))
rng = np.random.default_rng(0)
images = lambda: tf.constant(rng.uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32))
data = (images(), tf.constant(rng.integers(0, 10, batch)), images())
started = time.perf_counter()
float(gan.train_step(data)["d_loss"])
first = time.perf_counter() - started
best = float("inf")
for _ in range(rounds):
    started = time.perf_counter()
    for _ in range(steps):
        out = gan.train_step(data)
    float(out["d_loss"])  # wait for the last step
    best = min(best, (time.perf_counter() - started) / steps)
print(json.dumps({"first_step_s": first, "step_s": best}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"tutorial model (defaults), batch {args.batch}; best of {args.rounds} x {args.steps}")
    print(f"{'precision':<10}{'XLA':<6}{'first step s':>14}{'ms/step':>10}{'images/s':>10}")
    for precision, jit in VARIANTS:
        argv = [precision, "1" if jit else "0", args.batch, args.steps, args.rounds]
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, argv)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rate = 2 * args.batch / result["step_s"]  # labelled + unlabelled images per step
        print(
            f"{precision:<10}{'yes' if jit else 'no':<6}{result['first_step_s']:>14.1f}"
            f"{1000 * result['step_s']:>10.0f}{rate:>10.0f}"
        )


if __name__ == "__main__":
    main()
