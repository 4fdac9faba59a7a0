"""An offline SVHN look-alike: house-number crops rendered from published statistics.

The renderer (``ssgan/data/render.py``) draws each crop in named steps whose strengths
live in ``data.render``; this module generates whole splits in parallel and caches them.
Image ``i`` of a split is a pure function of ``(seed, split, i, settings)``, so parallel
generation and caching cannot change the data.

``python -m ssgan.data.synthetic --grid docs/images/synthetic_samples.png`` draws a grid.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ssgan.config import RenderConfig
from ssgan.data.render import font_paths, render
from ssgan.errors import DataError
from ssgan.files import exclusive_lock
from ssgan.stopping import check_stop

# Bump when the renderer changes: it is part of the cache key and so of every run's data
# fingerprint. 3: clean fonts on plates, uniform classes (up to commit 6c66d5d); 4: house
# numbers on walls, SVHN's class shares, camera effects (docs/data.md).
GENERATOR_VERSION = 4
SPLIT_IDS = {"train": 0, "test": 1}
_ARRAY_NAMES = ("train_x", "train_y", "test_x", "test_y")
DEFAULT_RENDER = RenderConfig()


def render_digit(
    seed: int, split: str, index: int, settings: RenderConfig = DEFAULT_RENDER
) -> tuple[np.ndarray, int]:
    """One (32, 32, 3) uint8 crop and its digit, determined by (seed, split, index, settings)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, GENERATOR_VERSION])
    return render(rng, split, settings)


def sample_crops(count: int, seed: int = 0) -> np.ndarray:
    """``count`` synthetic test crops (uint8, N x 32 x 32 x 3): stand-ins for real requests,
    e.g. a SavedModel's warm-up requests when no data set is at hand."""
    return np.stack([render_digit(seed, "test", index)[0] for index in range(count)])


def _render_range(
    args: tuple[int, str, int, int, RenderConfig],
) -> tuple[np.ndarray, np.ndarray]:
    seed, split, start, stop, settings = args
    images = np.empty((stop - start, 32, 32, 3), np.uint8)
    labels = np.empty(stop - start, np.int64)
    for offset, index in enumerate(range(start, stop)):
        images[offset], labels[offset] = render_digit(seed, split, index, settings)
    return images, labels


def _leave_signals_to_parent() -> None:
    """Render workers ignore stop signals: Ctrl-C reaches the whole process group, and
    the parent, not each worker, decides when generation stops (it drops the rest)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


def generate(
    seed: int,
    split: str,
    count: int,
    workers: int = 0,
    progress: bool = False,
    settings: RenderConfig = DEFAULT_RENDER,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops of one split, rendered in ``workers`` processes (0 = one per core)."""
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(1000, -(-count // (workers * 4))))
    tasks = [
        (seed, split, start, min(start + chunk, count), settings)
        for start in range(0, count, chunk)
    ]
    shown = None if progress else True  # None: on terminals only
    bar = tqdm(total=count, unit="img", desc=f"synthetic {split}", disable=shown)
    parts = []
    with bar, contextlib.ExitStack() as stack:
        results: Iterator[tuple[np.ndarray, np.ndarray]]
        if workers == 1 or len(tasks) == 1:
            results = map(_render_range, tasks)
        else:
            pool = ProcessPoolExecutor(workers, initializer=_leave_signals_to_parent)
            # On a stop, drop the chunks not started instead of rendering them all.
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            results = pool.map(_render_range, tasks)
        for part in results:
            check_stop()  # a safe point: a stop request ends generation between chunks
            parts.append(part)
            bar.update(len(part[1]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cache_file(root: Path, key: str) -> Path:
    """Where the generated set ``key`` is cached under ``data.root``."""
    return Path(root) / "synthetic" / f"digits-{key}.npz"


def cache_key(
    seed: int, train_size: int, test_size: int, settings: RenderConfig = DEFAULT_RENDER
) -> str:
    """Identifies a generated set: every parameter that changes its pixels."""
    spec = {
        "seed": seed,
        "train_size": train_size,
        "test_size": test_size,
        "version": GENERATOR_VERSION,
        "fonts": [Path(p).name for p in font_paths()],
        "render": dataclasses.asdict(settings),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def _read_cache(path: Path, sizes: dict[str, int]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there is no usable cache file.

    A cache that does not hold what its key promises (unreadable, other shapes or types,
    labels outside 0..9, e.g. a valid .npz copied over it) counts as damaged: it is only
    a cache, so it is made again.
    """
    try:
        with np.load(path, allow_pickle=False) as cached:
            arrays = {name: cached[name] for name in cached.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        _damaged(path, f"unreadable: {err}")
        return None
    problem = _cache_problem(arrays, sizes)
    if problem is not None:
        _damaged(path, problem)
        return None
    return arrays


def _cache_problem(arrays: dict[str, np.ndarray], sizes: dict[str, int]) -> str | None:
    if set(arrays) != set(_ARRAY_NAMES):
        return f"holds {sorted(arrays)}, expected {list(_ARRAY_NAMES)}"
    for split, size in sizes.items():
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if images.shape != (size, 32, 32, 3) or images.dtype != np.uint8:
            return f"{split}_x is {images.dtype} {images.shape}, expected uint8 ({size}, 32, 32, 3)"
        if labels.shape != (size,) or not np.issubdtype(labels.dtype, np.integer):
            return f"{split}_y is {labels.dtype} {labels.shape}, expected integers ({size},)"
        if size and (labels.min() < 0 or labels.max() > 9):
            return f"{split}_y holds labels outside 0..9"
    return None


def _damaged(path: Path, problem: str) -> None:
    logging.getLogger("ssgan.data").warning(
        f"the synthetic data cache {path} is damaged ({problem}): making it again"
    )


def load_synthetic(
    root: Path,
    *,
    seed: int,
    train_size: int,
    test_size: int,
    workers: int = 0,
    settings: RenderConfig = DEFAULT_RENDER,
) -> tuple[dict[str, np.ndarray], str]:
    """Train/test arrays, from the cache under ``root`` or generated and cached there.

    The cache file is written under a temporary name and renamed when complete, so an
    interrupted generation never leaves a half-written cache behind. A lock file makes
    concurrent runs (e.g. a parallel sweep) generate a set once and share it.
    """
    key = cache_key(seed, train_size, test_size, settings)
    path = cache_file(root, key)
    sizes = {"train": train_size, "test": test_size}
    arrays = _read_cache(path, sizes)
    if arrays is not None:
        return arrays, key
    with _cache_lock(path):
        arrays = _read_cache(path, sizes)  # another process may have made it while we waited
        if arrays is None:
            arrays = {}
            for split, size in (("train", train_size), ("test", test_size)):
                images, labels = generate(seed, split, size, workers, True, settings)
                arrays[f"{split}_x"], arrays[f"{split}_y"] = images, labels
            _write_cache(path, arrays)
    return arrays, key


def _cannot_write(folder: Path, err: OSError) -> DataError:
    return DataError(
        f"cannot write the synthetic data cache in {folder} ({err.strerror or err}): "
        "set data.root to a writable folder with room for it"
    )


@contextlib.contextmanager
def _cache_lock(path: Path) -> Iterator[None]:
    """Exclusive, across processes, while one set is generated and written."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError as err:
        raise _cannot_write(path.parent, err) from err
    with exclusive_lock(lock):
        yield


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write under a temporary name, then rename: readers never see a partial file."""
    partial = path.with_name(f".{path.name}.part-{os.getpid()}.npz")
    try:
        np.savez(partial, **arrays)  # type: ignore[arg-type]  # numpy's stub: a name could be allow_pickle
        os.replace(partial, path)
    except OSError as err:
        raise _cannot_write(path.parent, err) from err
    finally:
        partial.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw a grid of synthetic digits.")
    parser.add_argument("--grid", required=True, help="PNG file to write")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--scale", type=int, default=3, help="pixel magnification")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from ssgan.plots import image_grid

    images, _ = generate(args.seed, "train", args.rows * args.cols, workers=1)
    grid = image_grid(images, args.rows, args.cols)
    picture = Image.fromarray(grid)
    picture = picture.resize(
        (grid.shape[1] * args.scale, grid.shape[0] * args.scale), Image.Resampling.NEAREST
    )
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.grid)
    print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
