"""Input speed, printed as figures: ``python -m ssgan.data.benchmark [overrides]``.

Times, for the composed ``data`` config: generating the synthetic set cold (images/s),
loading it again from its cache, and the training stream of ``train_batches``
(batches/s at ``data.batch_size``, pixels already mapped to [-1, 1] and prefetched). A
training step of the default model takes on the order of 0.1-0.5 s on a small CPU, so
the stream must deliver far more than 10 batches/s not to be the bottleneck.

``--root`` defaults to a fresh temporary folder, so the first load really generates.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from ssgan.cli import compose_config, user_errors
from ssgan.config import DataConfig, TrainAppConfig, typed
from ssgan.data import load_data
from ssgan.runtime import start_tensorflow


def time_load(data_cfg: DataConfig, num_classes: int) -> tuple[float, float]:
    """Seconds of a cold load (generating for synthetic) and of a second, cached load."""
    start = time.perf_counter()
    load_data(data_cfg, num_classes)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    load_data(data_cfg, num_classes)
    return cold, time.perf_counter() - start


def stream_rate(data_cfg: DataConfig, num_classes: int, steps: int, warmup: int = 20) -> float:
    """Batches/s of the training stream, read as fast as it goes."""
    from ssgan.data.pipeline import train_batches  # TensorFlow: after main() started it

    data = load_data(data_cfg, num_classes)
    batches = iter(train_batches(data, data_cfg.batch_size, data_cfg.seed))
    for _ in range(warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        labelled, _, unlabelled = next(batches)
    unlabelled.numpy()  # the last batch is really materialised
    return steps / (time.perf_counter() - start)


def main() -> None:
    start_tensorflow()  # quietly, the allocator set first (ssgan.runtime)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.train_size=6000")
    parser.add_argument("--steps", type=int, default=500, help="batches to time")
    parser.add_argument("--root", help="data.root for the run (default: a temporary folder)")
    args = parser.parse_args()
    with user_errors(), tempfile.TemporaryDirectory(prefix="ssgan-data-bench-") as tmp:
        cfg = typed(compose_config("config", args.overrides), TrainAppConfig)
        data_cfg = replace(cfg.data, root=args.root or tmp)
        num_classes = cfg.model.num_classes
        cold, cached = time_load(data_cfg, num_classes)
        if data_cfg.name == "synthetic":
            count = data_cfg.train_size + data_cfg.test_size
            workers = data_cfg.num_workers or "one per core"
            print(
                f"synthetic generation: {count} images in {cold:.1f} s = {count / cold:.0f} "
                f"images/s (workers: {workers})"
            )
        else:
            print(f"svhn first load: {cold:.1f} s")
        print(f"second load (cached): {cached:.2f} s")
        rate = stream_rate(data_cfg, num_classes, args.steps)
        batch = data_cfg.batch_size
        print(f"train_batches: {rate:.0f} batches/s at batch {batch} = {rate * batch:.0f} images/s")


if __name__ == "__main__":
    main()
