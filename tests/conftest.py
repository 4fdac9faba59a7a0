"""Shared fixtures: tiny configs composed by the real Hydra tree, isolated stores; and the
check that every collected test has exactly one tier (unit, integration, e2e)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

# The helpers assert too: rewritten like test modules, their failures show the values.
pytest.register_assert_rewrite("tests.helpers")

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssgan.runtime import start_tensorflow

start_tensorflow()  # quietly, the allocator set first, before the imports below load it

from ssgan.cli import compose_config
from ssgan.stopping import clear_stop
from tests.helpers.configs import tiny_overrides
from tests.helpers.promoted_runs import Store, make_store, two_good_runs
from tests.helpers.tiers import tier_problems


@pytest.hookimpl(tryfirst=True)  # before -m deselects: an untiered test is never hidden
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError(
            "every test needs exactly one tier marker (unit, integration or e2e; see "
            "pyproject.toml):\n" + "\n".join(problems)
        )
    # Under pytest-xdist (the whole suite's command, .ci/run: -n auto --dist worksteal) the
    # tests marked slow come first, so the first worker starts on them while the second
    # runs the light tests, and an idle worker steals light tests from the end of the
    # other's queue. In file order they ended the run two at a time (test_scaleout.py's),
    # and each trains in several subprocesses: on 2 cores (also busy with other work) a
    # 55 s test took 320 s beside another. (`--dist loadgroup` with an xdist_group would
    # keep them on one worker, but pytest-xdist 3.8 cannot name groups under pytest 9.2:
    # it sets item._nodeid, which pytest 9.2 no longer reads, so groups are silently
    # ignored; pytest-dev/pytest-xdist#1386.) A serial run keeps file order; the workers
    # all sort alike, as xdist requires.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def no_stop_request_leaks() -> Iterator[None]:
    """A stop request is process-wide (a signal's, or a test's own ``request_stop``): one
    left by a test would stop the next test's training at its first safe point."""
    yield
    clear_stop()


@pytest.fixture(autouse=True)
def no_hydra_job_leaks() -> Iterator[None]:
    """Hydra keeps the last app's config process-wide: a test that ran a command's
    ``main()`` in-process (``--cfg job`` sets it without a job folder) would make the next
    test's ``JobContext.from_hydra()`` read a job that is not there."""
    yield
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def no_active_mlflow_run_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """MLflow's active run is process-wide: one a test leaves behind would become the
    parent of the next test's run. It is ended (KILLED, in whatever store it belongs to)
    and the test that left it fails, by name."""
    yield
    leaked = []
    while (active := mlflow.active_run()) is not None:
        leaked.append(active.info.run_id)
        with contextlib.suppress(Exception):  # MLflow drops it from its stack first
            mlflow.end_run("KILLED")
    if leaked:
        pytest.fail(f"{request.node.nodeid} left MLflow's active run {leaked} behind")


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> DictConfig:
    return compose_config("config", tiny_overrides(tmp_path))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished smoke training run, shared by the tests that only read it."""
    from ssgan.training.run import train

    root = tmp_path_factory.mktemp("smoke")
    cfg = compose_config("config", tiny_overrides(root))
    summary = train(cfg)
    return {"summary": summary, "cfg": cfg, "root": root}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A tiny MLflow store and data set for promote's tests (one per test module)."""
    return make_store(tmp_path_factory.mktemp("promote"))


@pytest.fixture(scope="module")
def runs(store: Store) -> dict[str, str]:
    """Two finished runs "a" and "b" in ``store``, ready to promote."""
    return two_good_runs(store)
