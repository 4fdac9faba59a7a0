"""Hydra as users use it: configs from outside the repository, hydra.job.chdir, the job's
log and output folder tied to its MLflow run, and each command's own --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ssgan.cli import check_overrides
from ssgan.config_checks import validate_train_config
from ssgan.errors import ConfigError
from tests.helpers.processes import run_cli

pytestmark = pytest.mark.e2e

MINE = "# @package _global_\nmodel:\n  z_size: 7\n"


def _my_conf(root: Path) -> Path:
    folder = root / "myconf"
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "mine.yaml").write_text(MINE)
    return folder


def test_experiments_outside_the_repo_pass_the_early_checks(tmp_path: Path) -> None:
    mine = _my_conf(tmp_path)
    check_overrides("config", ["--config-dir", str(mine), "experiment=mine"], validate_train_config)
    check_overrides("config", [f"--config-dir={mine}", "experiment=mine"], validate_train_config)
    check_overrides(
        "config", [f"hydra.searchpath=[file://{mine}]", "experiment=mine"], validate_train_config
    )
    with pytest.raises(ConfigError, match="Could not find 'experiment/mine'"):
        check_overrides("config", ["experiment=mine"], validate_train_config)
    run = tmp_path / "run"
    run.mkdir()
    shown = run_cli("ssgan.train", "--config-dir", "../myconf", "experiment=mine", "--cfg", "job",
                    cwd=run)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "z_size: 7" in shown.stdout
    bad = run_cli("ssgan.train", "--config-dir", "/nonexistent", "experiment=mine", cwd=run)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: --config-dir /nonexistent: there is no folder")
    assert bad.stderr.count("\n") == 1 and list(run.iterdir()) == []


def test_promotes_help_lists_its_own_groups(tmp_path: Path) -> None:
    """(ssgan.train's: tests/test_config.py; ssgan.tune's: tests/test_tune.py.)"""
    promote = run_cli("ssgan.promote", "--help", cwd=tmp_path)
    assert promote.returncode == 0, promote.stderr
    groups = promote.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert groups.split() == ["tracking:", "default"]
    assert list(tmp_path.iterdir()) == []


def test_chdir_run_uses_the_launch_folders_store_and_data_and_links_its_folder(
    tmp_path: Path,
) -> None:
    """hydra.job.chdir=true with the default relative paths: the store and the data cache
    are the launch folder's; the output folder holds the job's log and the run id, and the
    run names the folder. The store is MLflow's default, so MLflow's own tools started in
    the launch folder find the run; its params show the paths as written (as without
    chdir); the log, its summary lines included, and .hydra/ are the run's artifacts; the
    ended run holds no lease and names the installed ssgan's version."""
    result = run_cli("ssgan.train", "experiment=smoke", "hydra.job.chdir=true",
                     "train.epochs=1", "train.sample_grid=false", cwd=tmp_path,
                     env={"SSGAN_DATA_ROOT": "data"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split("run_id: ")[1].split()[0]
    (folder,) = (tmp_path / "outputs").glob("*/*")
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "mlflow_run_id", "train.log"]
    assert (folder / "mlflow_run_id").read_text().strip() == run_id
    log = (folder / "train.log").read_text()
    assert f"run_id: {run_id} (started)" in log and "epoch 1/1: val/accuracy" in log
    assert "epoch 1/1: val/accuracy" in result.stdout  # the terminal still shows it
    # Nothing else on the terminal: no TensorFlow start-up lines, no MLflow notices or
    # warnings from logging the model (the data cache's notice is the one line there).
    assert [line for line in result.stderr.splitlines() if "synthetic" not in line] == []
    assert (tmp_path / "data" / "synthetic").is_dir()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # MLflow's default store
    run = client.get_run(run_id)
    assert run.data.tags["ssgan.hydra_output_dir"] == str(folder.resolve())
    assert run.data.params["data.root"] == "data"  # as written, not the anchored path
    assert run.data.params["tracking.uri"] == "sqlite:///mlflow.db"
    assert run.data.params["tracking.artifact_root"] == "mlruns"
    assert (tmp_path / "mlruns").is_dir() and not (folder / "mlruns").exists()
    assert "ssgan.lease" not in run.data.tags and run.data.tags["ssgan.version"]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("best val accuracy") and summary in log
    where = folder.relative_to(tmp_path)
    attached = Path(client.download_artifacts(run_id, f"hydra/{where}", str(tmp_path / "got")))
    assert sorted(str(p.relative_to(attached)) for p in attached.rglob("*") if p.is_file()) == [
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "train.log",
    ]
    assert summary in (attached / "train.log").read_text()
    found = subprocess.run(
        [sys.executable, "-c", "import mlflow; "
         "print(*mlflow.search_runs(search_all_experiments=True).run_id)"],
        cwd=tmp_path, capture_output=True, text=True, env=_without_mlflow_settings(),
    )  # fmt: skip
    assert found.stdout.split() == [run_id], found.stderr


def _without_mlflow_settings() -> dict[str, str]:
    """The environment with no MLFLOW_* variable: MLflow's defaults, as `mlflow ui` has."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def test_a_full_output_folder_is_one_line_before_any_run(tmp_path: Path) -> None:
    """Hydra writes the job's folder (``.hydra/config.yaml``) before the task runs; on a
    full disk (here a file that is /dev/full) it printed its traceback. Now one line names
    the folder, exit status 2, and no MLflow run exists."""
    from tests.helpers.configs import tiny_overrides

    out = tmp_path / "out"
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").symlink_to("/dev/full")
    result = run_cli(
        "ssgan.train", *tiny_overrides(tmp_path, seeded=False), f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: cannot write the job's output folder {out} (No space left on device): free "
        "space there, or point hydra.run.dir (hydra.sweep.dir with -m) at a folder with room\n"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # no run


def _query(module: str, line: str, cwd: Path) -> list[str]:
    """What the installed completer offers for ``line``: it runs the console script with
    Hydra's query mode (``-sc query=bash``, the line in COMP_LINE)."""
    asked = run_cli(module, "-sc", "query=bash", cwd=cwd, env={"COMP_LINE": line})
    assert asked.returncode == 0, asked.stderr
    return asked.stdout.split()


def test_shell_completion_offers_the_projects_groups_and_keys(tmp_path: Path) -> None:
    """docs/training.md, "Shell completion": ssgan-train and ssgan-tune complete groups,
    their options and config keys (tune: its searches and the training config too)."""
    offered = _query("ssgan.train", "ssgan-train method=", tmp_path)
    assert {"method=supervised", "method=ssgan", "method=fixmatch"} <= set(offered)
    assert _query("ssgan.train", "ssgan-train model.z", tmp_path) == ["model.z_size="]
    assert _query("ssgan.tune", "ssgan-tune search=", tmp_path) == [
        "search=smoke", "search=ssgan_lr"
    ]  # fmt: skip
    assert _query("ssgan.tune", "ssgan-tune search=smoke model.z", tmp_path) == ["model.z_size="]
    assert "search.sampler=" in _query("ssgan.tune", "ssgan-tune search.sam", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_completer_installed_from_python_m_completes_the_console_script(
    tmp_path: Path,
) -> None:
    """`eval "$(python -m ssgan.train -sc install=bash)"` installs Hydra's completer for
    ssgan-train (for `python`, Hydra's choice, it would never complete `python -m …`),
    and pressing TAB after `ssgan-train method=f` offers fixmatch."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    script = (
        f'eval "$({sys.executable} -m ssgan.train -sc install=bash)"\n'
        "complete -p ssgan-train\n"
        'COMP_LINE="ssgan-train method=f"; COMP_POINT=${#COMP_LINE}\n'
        "COMP_WORDS=(ssgan-train method=f); COMP_CWORD=1\n"
        "hydra_bash_completion\n"
        'echo "offered: ${COMPREPLY[*]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "-F hydra_bash_completion ssgan-train" in done.stdout
    offered = done.stdout.split("offered: ")[1].split()
    assert "method=fixmatch" in offered and all(o.startswith("method=f") for o in offered)
    assert "note: shell completion is for the console script ssgan-train" in done.stderr
