"""The wheel: ``pip install .`` (here: a wheel built from the sources, installed into a
fresh environment) gives a ``python -m ssgan.train`` that finds its configs, run from an
empty folder; the editable install reads the checkout's conf/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.helpers.repo import REPO_ROOT


def _venv(root: Path) -> tuple[Path, Path]:
    """A fresh environment whose dependencies come from this one (a .pth naming our
    site-packages; the .pth files in there, such as our editable finder, stay inactive)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = root / "lib" / version / "site-packages"
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin" / "python", site


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.mark.unit
def test_listed_packages_are_every_package() -> None:
    """pyproject.toml lists the packages (find cannot map conf/): none may be missed."""
    settings = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    inits = (REPO_ROOT / "ssgan").rglob("__init__.py")
    found = {".".join(p.parent.relative_to(REPO_ROOT).parts) for p in inits}
    assert set(settings["packages"]) == found | {"ssgan.conf"}
    assert settings["package-dir"] == {"ssgan.conf": "conf"}


@pytest.mark.unit
def test_every_entry_point_is_a_console_script() -> None:
    """Each ``python -m ssgan.<name>`` command is also installed as ``ssgan-<name>``."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry_points = [
        path.stem
        for path in (REPO_ROOT / "ssgan").glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text()
    ]
    # A module name's underscores become hyphens, as in every other console script name.
    expected = {f"ssgan-{name.replace('_', '-')}": f"ssgan.{name}:main" for name in entry_points}
    assert scripts == expected
    for name in entry_points:
        assert "\ndef main(" in (REPO_ROOT / "ssgan" / f"{name}.py").read_text(), name


@pytest.mark.e2e
@pytest.mark.slow
def test_wheel_installed_in_a_fresh_environment_trains_from_an_empty_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside it
    for name in ("ssgan", "conf"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO_ROOT / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(source), "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("ssgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ssgan/conf/config.yaml" in names and "ssgan/conf/experiment/smoke.yaml" in names
    modules = (REPO_ROOT / "ssgan").rglob("*.py")
    assert {str(p.relative_to(REPO_ROOT)) for p in modules} <= names

    python, site = _venv(tmp_path / "fresh")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run(
        [python, "-c", "import ssgan.cli, sys; print(ssgan.cli.CONFIG_DIR); "
         "print(any('editable' in m for m in sys.modules))"],
        cwd=empty, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(site / "ssgan" / "conf"), "False"]
    run = subprocess.run(
        [python, "-m", "ssgan.train", "experiment=smoke", "train.epochs=1",
         "train.sample_grid=false"],
        cwd=empty, capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "model: models:/m-" in run.stdout and (empty / "mlflow.db").is_file()
    # No git checkout: the run names its code by the installed package's version.
    run_id = run.stdout.split("run_id: ")[1].split()[0]
    tags = subprocess.run(
        [python, "-c", f"import mlflow; print(mlflow.get_run('{run_id}').data.tags)"],
        cwd=empty, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"'ssgan.version': '{version}'" in tags.stdout, tags.stderr
