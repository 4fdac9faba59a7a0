"""Shared fixtures: tiny configs composed by the real Hydra tree, isolated stores; and the
check that every collected test has exactly one tier (unit, integration, e2e)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers assert too: rewritten like test modules, their failures show the values.
pytest.register_assert_rewrite("tests.helpers")

from omegaconf import DictConfig

from ssgan.runtime import start_tensorflow

start_tensorflow()  # quietly, the allocator set first, before the imports below load it

from ssgan.cli import compose_config
from ssgan.stopping import clear_stop
from tests.helpers.configs import tiny_overrides
from tests.helpers.promoted_runs import Store, make_store, two_good_runs
from tests.helpers.tiers import tier_problems

SLOW_GROUP = "slow"  # xdist_group of the slow tests (their node ids end in @slow then)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: an untiered test is never hidden
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError(
            "every test needs exactly one tier marker (unit, integration or e2e; see "
            "pyproject.toml):\n" + "\n".join(problems)
        )
    # Under pytest-xdist's `--dist loadgroup` (the whole suite's command, .ci/run) the
    # tests marked slow run one after another on one worker, never two at once: each
    # trains in several subprocesses (two TensorFlow workers, a search's workers, a
    # tracking server), and two of them side by side on a 2-core machine starve each
    # other (a 55 s test took 320 s beside another, on a busy machine) and leave a long
    # tail. The biggest group, xdist hands it out first; the other worker runs the rest.
    # (Tried first, before xdist's own hook reads the marker; a no-op without xdist.)
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            if item.get_closest_marker("slow"):
                item.add_marker(pytest.mark.xdist_group(SLOW_GROUP))


@pytest.fixture(autouse=True)
def no_stop_request_leaks() -> Iterator[None]:
    """A stop request is process-wide (a signal's, or a test's own ``request_stop``): one
    left by a test would stop the next test's training at its first safe point."""
    yield
    clear_stop()


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
