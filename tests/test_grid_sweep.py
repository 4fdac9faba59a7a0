"""A grid sweep started again in the same folder: an interrupted attempt's parent run is
continued (its jobs' runs are under it), and with ``resume=auto`` a finished one too, whose
jobs report their finished runs instead of training again; anything else gets a parent
run of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from ssgan.job_context import write_sweep_parent
from ssgan.sweeps.grid import start_grid
from tests.helpers.configs import tiny_overrides

pytestmark = pytest.mark.integration


def _attempt(tmp_path: Path, *extra: str) -> str:
    """Start the sweep's parent as ``python -m ssgan.train -m …`` does, and name it in the
    sweep folder as the Hydra callback does before the jobs."""
    folder = tmp_path / "multirun"
    argv = ["-m", *tiny_overrides(tmp_path), "train.seed=0,1", f"hydra.sweep.dir={folder}"]
    parent = start_grid([*argv, *extra])
    write_sweep_parent(folder, parent.run_id)
    return parent.run_id


def _end(tmp_path: Path, run_id: str, status: str) -> MlflowClient:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    client.set_terminated(run_id, status)
    return client


@pytest.mark.parametrize("status", ["KILLED", "FAILED"])
def test_the_same_sweep_again_continues_an_interrupted_attempts_parent(
    tmp_path: Path, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _attempt(tmp_path)
    client = _end(tmp_path, first, status)
    assert _attempt(tmp_path, "resume=auto") == first  # resume= may be added to continue
    assert f"sweep parent run: {first} (continued" in capsys.readouterr().out
    assert client.get_run(first).info.status == "RUNNING"
    assert len(client.search_runs([client.get_run(first).info.experiment_id])) == 1


def test_an_attempt_in_the_default_folder_is_continued_by_naming_its_folder(
    tmp_path: Path,
) -> None:
    """The first attempt ran in Hydra's folder named after the time; its error line names
    that folder, and the same command plus ``hydra.sweep.dir=`` it continues the sweep."""
    first = _attempt(tmp_path)
    client = _end(tmp_path, first, "FAILED")
    overrides = client.get_run(first).data.tags["ssgan.overrides"]
    default_folder = " ".join(o for o in overrides.split(" ") if "sweep.dir" not in o)
    client.set_tag(first, "ssgan.overrides", default_folder)
    assert _attempt(tmp_path, "resume=auto") == first


def test_a_finished_sweep_started_again_gets_a_parent_of_its_own(tmp_path: Path) -> None:
    first = _attempt(tmp_path)
    client = _end(tmp_path, first, "FINISHED")
    second = _attempt(tmp_path)
    assert second != first and client.get_run(first).info.status == "FINISHED"


def test_a_finished_sweep_with_resume_auto_is_continued(tmp_path: Path) -> None:
    """Its jobs report their finished runs, untrained: the same parent ends with them."""
    first = _attempt(tmp_path, "resume=auto")
    _end(tmp_path, first, "FINISHED")
    assert _attempt(tmp_path, "resume=auto") == first


def test_another_sweep_in_the_same_folder_gets_a_parent_of_its_own(tmp_path: Path) -> None:
    first = _attempt(tmp_path)
    _end(tmp_path, first, "KILLED")
    assert _attempt(tmp_path, "model.z_size=8") != first


def test_a_folder_naming_a_run_the_store_lacks_gets_a_new_parent(tmp_path: Path) -> None:
    write_sweep_parent(tmp_path / "multirun", "0" * 32)
    assert _attempt(tmp_path) != "0" * 32
