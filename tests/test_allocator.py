"""The memory allocator setting (ssgan/allocator.py): applied (mallopt accepted it) when
a command starts TensorFlow (ssgan.runtime), off with SSGAN_MALLOC=system, a bad value is
one warning line; importing the package alone touches neither.
Each case runs in a fresh process, since malloc is set up once per process. What the
setting does to a training step is measured by ``python -m ssgan.bench train`` (the
kernel's share of CPU time) and experiments/allocator/compare.py, not timed here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO_ROOT

pytestmark = pytest.mark.e2e

PROBE = (
    "from ssgan.runtime import start_tensorflow\n"
    "start_tensorflow()\n"
    "from ssgan import allocator\n"
    "print(allocator.describe())\n"
)


def _describe(probe: str = PROBE, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SSGAN_MALLOC", "LD_PRELOAD")}
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
        cwd=REPO_ROOT, env={**environment, **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "glibc malloc, mmap threshold 32 MiB, trim threshold 2 GiB"),
        ({"SSGAN_MALLOC": "tuned"}, "glibc malloc, mmap threshold 32 MiB, trim threshold 2 GiB"),
        ({"SSGAN_MALLOC": "system"}, "glibc malloc, defaults (SSGAN_MALLOC=system)"),
    ],
)
def test_allocator_is_set_as_tensorflow_starts_unless_turned_off(env: dict, expected: str) -> None:
    probed = _describe(**env)
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.strip() == expected
    assert probed.stderr == ""


def test_a_bad_setting_is_one_warning_line_and_the_default() -> None:
    probed = _describe(SSGAN_MALLOC="fast")
    assert probed.returncode == 0, probed.stderr
    assert probed.stderr == "warning: SSGAN_MALLOC=fast is not one of tuned, system; using tuned\n"
    assert probed.stdout.strip().startswith("glibc malloc, mmap threshold 32 MiB")


def test_importing_the_package_starts_neither_tensorflow_nor_the_allocator() -> None:
    """``python -m ssgan.report`` and the like do not pay for TensorFlow."""
    probe = (
        "import sys\n"
        "import ssgan, ssgan.report\n"
        "from ssgan import allocator\n"
        "print('tensorflow' in sys.modules, allocator.describe())\n"
    )
    probed = _describe(probe)
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.strip() == "False not configured"
    assert probed.stderr == ""


@pytest.mark.parametrize(
    ("command", "override", "line"),
    [
        ("train", "model.z_size=0", "model.z_size=0 is out of range: allowed >= 1 and <= 4096"),
        ("promote", "label=blue", "label=blue is not a valid choice: allowed stable, canary"),
        ("export", "checkpoint=top", "checkpoint=top is not a valid choice: allowed best, last"),
        ("bench", "bench.steps=0", "bench.steps=0 is too small: allowed 1 or more"),
        ("data_stats", "split=bogus", "split=bogus is not a valid choice: allowed train, test"),
    ],
)  # fmt: skip
def test_commands_refuse_a_bad_override_before_tensorflow_starts(
    command: str, override: str, line: str
) -> None:
    """Each command starts TensorFlow in its Hydra job: ``--cfg job``, shell completion
    and a refused override (one line, exit 2) answer in the seconds Hydra needs, not
    TensorFlow's import."""
    probe = (
        "import sys\n"
        f"from ssgan.{command} import main\n"
        f"sys.argv = ['ssgan-{command}', {override!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as stop:\n"
        "    print(stop.code, 'tensorflow' in sys.modules)\n"
    )
    probed = _describe(probe)
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.strip() == "2 False"
    assert probed.stderr == f"error: {line}\n"  # one line


def test_tensorflow_starts_without_sklearn_which_imports_later_as_usual() -> None:
    """Keras would import scikit-learn as TensorFlow starts (about 1 s of every command's
    start); it is kept out during the import only."""
    probe = (
        "import sys\n"
        "from ssgan.runtime import start_tensorflow\n"
        "start_tensorflow()\n"
        "import keras, tensorflow as tf\n"
        "before = 'sklearn' in sys.modules\n"
        "layer = keras.layers.Dense(2)\n"
        "print(before, layer(tf.zeros([1, 3])).shape)\n"
        "import sklearn.base\n"
        "print(sklearn.base.BaseEstimator.__name__)\n"
    )
    probed = _describe(probe)
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.split("\n")[:2] == ["False (1, 2)", "BaseEstimator"]
