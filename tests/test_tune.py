"""Hyperparameter search (ssgan.tune), sweep parent runs and the sweep report."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from ssgan.errors import ConfigError, UserError
from ssgan.sweeps import study as tune
from ssgan.sweeps import trials
from ssgan.sweeps.outcome import SearchOutcome
from ssgan.sweeps.plan import prepare
from ssgan.sweeps.report import load_sweep, write_report
from ssgan.sweeps.storage import load_existing
from ssgan.tracking.store import TrackingStore
from ssgan.training import run as training_run
from ssgan.training.summary import RunSummary
from tests.helpers.configs import tiny_overrides
from tests.helpers.processes import run_cli

FAST = ["train.sample_grid=false", "train.steps_per_epoch=4", "train.checkpoint_every=4"]
# Trials 0 and 1 train one epoch, trial 2 three; the threshold pruner (every accuracy
# is below 1.0) may act from epoch 2 on, so exactly trial 2 is pruned, after epoch 2.
PRUNE_ONE = [
    "search=smoke",
    "search.pruner.name=threshold",
    "search.pruner.lower=1.0",
    "search.pruner.n_warmup_steps=2",
    "+search.space.train.epochs={type:categorical,choices:[1,3]}",
    "search.enqueue=[{train:{epochs:1}},{train:{epochs:1}},{train:{epochs:3}}]",
]


def _trained(run_id: str) -> RunSummary:
    """What a faked training run returns: one epoch, validation accuracy 0.5."""
    return RunSummary(run_id, steps=1, best_val_accuracy=0.5, best_test_accuracy=0.5, best_epoch=1)


def _client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")


def _search(argv: list[str]) -> SearchOutcome:
    return tune.run_search(prepare(argv))


OUTCOME = SearchOutcome(parent_run_id="p1", study="smoke", complete=2, pruned=1, failed=0,
                         n_counted=3, best_trial=1, best_value=0.25,
                         best_params={"train.lr": 0.0003, "model.z_size": 8},
                         best_run_id="r1")  # fmt: skip


@pytest.mark.unit
def test_a_search_outcome_prints_as_tune_printed_it() -> None:
    assert OUTCOME.text() == (
        "parent_run_id: p1\n"
        "trials: 2 complete, 1 pruned, 0 failed\n"
        "best: trial 1 (run r1) val accuracy 0.2500: train.lr=0.0003 model.z_size=8\n"
        "report: python -m ssgan.report parent_run_id=p1"
    )
    with_baseline = dataclasses.replace(OUTCOME, baseline_value=0.125)
    assert with_baseline.text().splitlines()[3] == (
        "baseline (the base config's values): val accuracy 0.1250"
    )


@pytest.mark.unit
def test_a_search_outcome_gives_the_parent_runs_tags_and_metrics() -> None:
    assert OUTCOME.parent_tags() == {
        "ssgan.trials_complete": "2", "ssgan.trials_pruned": "1", "ssgan.trials_failed": "0",
        "ssgan.best_trial": "1", "ssgan.best_run_id": "r1",
        "ssgan.best.train.lr": "0.0003", "ssgan.best.model.z_size": "8",
    }  # fmt: skip
    assert OUTCOME.to_metrics() == {"best/val_accuracy": 0.25}
    assert dataclasses.replace(OUTCOME, baseline_value=0.125).to_metrics() == {
        "best/val_accuracy": 0.25, "baseline/val_accuracy": 0.125}  # fmt: skip


def _children(client: MlflowClient, parent_id: str) -> list:
    parent = client.get_run(parent_id)
    return client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )


@pytest.mark.integration
def test_search_runs_children_under_a_parent_and_prunes_one(tmp_path: Path, capsys) -> None:
    argv = PRUNE_ONE + tiny_overrides(tmp_path) + FAST
    summary = _search(argv)
    storage = str(tmp_path / "mlruns" / "optuna.journal")
    assert f"search {summary.study}: study storage {storage}\n" in capsys.readouterr().out
    client = _client(tmp_path)
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ssgan.sweep_kind"] == "search"
    assert parent.data.tags["ssgan.command"].startswith("python -m ssgan.tune search=smoke")
    assert parent.data.params["search.space.train.lr.type"] == "float"
    assert parent.data.params["search.pruner.name"] == "threshold"

    children = {int(r.data.tags["ssgan.trial"]): r for r in _children(client, parent.info.run_id)}
    assert sorted(children) == [0, 1, 2]
    assert all(r.info.status == "FINISHED" for r in children.values())
    pruned = children[2]
    assert pruned.data.tags["ssgan.pruned"] == "true"
    assert pruned.data.tags["ssgan.pruned_at_epoch"] == "2"
    # Partial metrics kept: two of its three epochs, no exported model.
    assert len(client.get_metric_history(pruned.info.run_id, "val/accuracy")) == 2
    assert "model" not in [a.path for a in client.list_artifacts(pruned.info.run_id)]
    assert all("ssgan.pruned" not in children[i].data.tags for i in (0, 1))
    assert all("ssgan.lease" not in r.data.tags for r in children.values())  # ended: no owner

    study = load_existing(
        parent.data.tags["ssgan.optuna_storage"], parent.data.tags["ssgan.optuna_study"]
    )
    assert study.metric_names == ["val_accuracy"]  # what optuna-dashboard calls it
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE, 2: TrialState.PRUNED}
    # The objective is the validation accuracy of the run, never the test accuracy.
    for trial in study.trials[:2]:
        assert trial.value == children[trial.number].data.metrics["best/val_accuracy"]
    best = max(study.trials[:2], key=lambda t: t.value)
    assert parent.data.tags["ssgan.best_run_id"] == children[best.number].info.run_id
    assert parent.data.metrics["best/val_accuracy"] == best.value
    assert summary.complete == 2 and summary.pruned == 1
    # The report the search logged as it ended (before the test writes one): complete.
    logged_copy = client.download_artifacts(parent.info.run_id, "report/report.md", str(tmp_path))
    logged_text = Path(logged_copy).read_text()
    assert parent.info.status == "FINISHED" and "Partial report" not in logged_text
    assert "- status: FINISHED: the sweep has ended; this report is complete" in logged_text

    # The report: on disk and on the parent run, one row per trial, Optuna's plots.
    out = tmp_path / "report"
    write_report(_store(tmp_path), parent.info.run_id, out)
    text = (out / "report.md").read_text()
    assert "| trial | train.lr | train.epochs | method.unsupervised_weight |" in text
    assert text.count("| enqueued |") == 3
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"optuna_history.png", "optuna_importances.png"} <= plots
    assert "best_val_accuracy_vs_train.lr.png" in plots
    logged = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert "report/report.md" in logged

    # While workers still run, the report says it is partial (3 of 3 have finished here).
    client.update_run(parent.info.run_id, "RUNNING")
    write_report(_store(tmp_path), parent.info.run_id, out)
    assert (
        "**Partial report**: the sweep is still running (3 of 3 trials finished)"
        in (out / "report.md").read_text()
    )

    # The same command again finds the finished study: no trial runs twice.
    again = _search(argv)
    assert again.parent_run_id == parent.info.run_id
    assert len(_children(client, parent.info.run_id)) == 3


def _store(root: Path) -> TrackingStore:
    from ssgan.cli import compose_config

    return TrackingStore(compose_config("config", tiny_overrides(root)).tracking)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+search.space.train.lrr={type:float,low:0.1,high:0.2}", "unknown key 'train.lrr'"),
        ("+search.space.model.nope.x={type:int,low:1,high:2}", "unknown key 'model.nope.x'"),
        ("search.space.train.lr.high=0.00001", "empty range"),
        ("search.space.train.lr.low=abc", "search.space.train.lr.low='abc' is not a number"),
        ("search.space.train.lr.type=normal", "is not a distribution"),
        ("search.space.train.lr.high=20.0", "cannot be trained: train.lr=20.0 is out of range"),
        ("+search.space.model.z_size={type:int,low:8,high:16.5}", "is not an integer"),
        ("+search.space.model.z_size={type:categorical,choices:[]}", "choices: empty"),
        ("search.pruner.name=sometimes", "search.pruner.name=sometimes is not a valid choice"),
        ("search.n_trials=0", "search.n_trials=0 is out of range: allowed >= 1"),
        ("search.workers=0", "search.workers=0 is out of range: allowed >= 1"),
        ("hydra/launcher=nope", "hydra/launcher=nope"),
        (
            "search.threads_per_worker=-1",
            "search.threads_per_worker=-1 is out of range: allowed >= 0",
        ),
        ("search.enqueue=[{train:{beta1:0.5}}]", "'train.beta1' is not in search.space"),
        ("search.enqueue=[{train:{lr:1.0}}]", "train.lr=1.0 is outside search.space"),
        ("model.z_size=8,16", "trials take one value per key"),
        ("search.sampler=grid", "search.sampler=grid is not a valid choice"),
        ("+search.bogus=1", "search.bogus is not a search setting: the keys are name,"),
        (
            "+search.n_trial=5",
            "search.n_trial is not a search setting: did you mean search.n_trials?",
        ),  # fmt: skip
        ("+search.pruner.percentil=5", "did you mean search.pruner.percentile?"),
    ],
)
def test_bad_search_configs_are_refused_before_anything_is_written(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        prepare(["search=smoke", *tiny_overrides(tmp_path, seeded=False), override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.e2e
def test_bad_search_config_on_the_command_line(tmp_path: Path) -> None:
    result = run_cli(
        "ssgan.tune",
        "search=smoke",
        "search.space.train.lr.low=0.01",
        "search.space.train.lr.high=0.001",
        *tiny_overrides(tmp_path, seeded=False),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: search.space.train.lr: empty range")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "mlruns").exists() and not list(tmp_path.iterdir())


@pytest.mark.unit
def test_baseline_needs_the_base_values_inside_the_space(tmp_path: Path) -> None:
    plan = prepare(["search=ssgan_lr", *tiny_overrides(tmp_path)])
    assert plan.first_trials[0] == (
        {
            "train.lr": 3e-4,
            "train.beta1": 0.5,
            "method.unsupervised_weight": 1.0,
            "model.drop_rate": 0.5,
            "model.d_size_mult": 8,
            "model.g_size_mult": 8,
            "model.z_size": 16,
        },
        "baseline",
    )
    with pytest.raises(ConfigError, match="base value model.z_size=2 is outside"):
        prepare(["search=ssgan_lr", *tiny_overrides(tmp_path), "model.z_size=2"])


@pytest.mark.integration
def test_report_refuses_a_run_that_is_not_a_sweep(smoke_run: dict, tmp_path: Path) -> None:
    tracking = TrackingStore(smoke_run["cfg"].tracking)
    with pytest.raises(UserError, match="has no child runs"):
        load_sweep(tracking, smoke_run["summary"].run_id)
    with pytest.raises(UserError, match="not an MLflow run id"):
        load_sweep(tracking, "nope")
    assert not (tmp_path / "reports").exists()


@pytest.mark.unit
@pytest.mark.parametrize(
    "preset", [[], ["experiment=label_budget"], ["experiment=improved_gan_svhn"]]
)
def test_ssgan_lr_holds_the_defaults_of_every_preset(
    tmp_path: Path, preset: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's search command: its baseline trial is possible with every preset."""
    monkeypatch.chdir(tmp_path)  # the default store is the launch folder's: an empty one
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plan = prepare(["search=ssgan_lr", *preset, f"data.root={tmp_path}"])
    values, role = plan.first_trials[0]
    assert role == "baseline" and values["train.lr"] == plan.base.train.lr
    assert plan.storage == str(Path("optuna.journal").resolve())  # beside mlflow.db
    assert not (tmp_path / "mlruns").exists()


# -- probes of issue 24: a damaged study file, every trial failing, a stop between trials --


@pytest.mark.integration
def test_a_damaged_study_file_is_one_line_before_any_run(tmp_path: Path) -> None:
    """A garbage study file used to end the search in a traceback: one line naming the
    file and the way out, before any run is written. The same for the journal (today's
    default) and a SQLite file (the default searches begun before it continue in)."""
    argv = ["search=smoke", *tiny_overrides(tmp_path, seeded=False)]
    plan = prepare(argv)
    damaged = Path(plan.storage)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"SQLite format 3\x00" + os.urandom(984))
    with pytest.raises(UserError) as refused:
        tune.run_search(plan)
    assert str(refused.value).startswith(f"search storage {damaged} is not an Optuna journal")
    assert f"mv {damaged} {damaged}.broken" in str(refused.value)
    assert damaged.stat().st_size == 1000 and not (tmp_path / "mlruns" / "mlflow.db").exists()
    plan.storage = f"sqlite:///{damaged.with_name('optuna.db')}"
    damaged.rename(damaged.with_name("optuna.db"))
    with pytest.raises(UserError, match="is not a readable SQLite database"):
        tune.run_search(plan)


@pytest.mark.integration
def test_a_torn_last_journal_record_is_dropped_and_every_complete_one_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker killed mid-append leaves a last record without its newline: opening the
    journal cuts it off (saying so) and keeps every complete record, so the next trial's
    append does not turn it into a line that every later read fails on."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from ssgan.sweeps.storage import open_storage

    path = tmp_path / "optuna.journal"
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    complete = path.read_bytes()
    with open(path, "ab") as journal:
        journal.write(b'{"op_code": 5, "worker_id": "w", "trial_id": 1, "param_na')
    storage = open_storage(str(path))
    assert path.read_bytes() == complete
    assert "dropped its last record, cut off by a crash" in capsys.readouterr().err
    optuna.load_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    reread = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    assert [t.state for t in reread.trials] == [TrialState.COMPLETE] * 3
    with open(path, "ab") as journal:
        journal.write(b"not a record\n")
    with pytest.raises(UserError, match="is not an Optuna journal"):
        open_storage(str(path))


def _fake_trials(monkeypatch: pytest.MonkeyPatch, trial) -> list:
    """``train`` replaced by ``trial(cfg)``: the search's machinery without training."""
    calls = []

    def fake_train(cfg, on_epoch_end=None, tags=None, job=None) -> RunSummary:
        calls.append(cfg)
        return trial(cfg)

    monkeypatch.setattr(training_run, "train", fake_train)
    return calls


@pytest.mark.integration
def test_a_search_whose_every_trial_fails_ends_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trial diverging used to end the search FINISHED, exit 0, with no best."""

    def diverge(cfg) -> dict:
        raise trials.NonFiniteLossError("train/d_loss became nan at step 3: training diverged")

    calls = _fake_trials(monkeypatch, diverge)
    with pytest.raises(UserError) as failed:
        _search(["search=smoke", *tiny_overrides(tmp_path)])
    message = str(failed.value)
    assert len(calls) == 3 and "no trial completed (3 failed, 0 pruned of 3)" in message
    assert "the first failure: train/d_loss became nan at step 3" in message
    (parent,) = _client(tmp_path).search_runs(["0", "1"], "tags.`ssgan.sweep_kind` = 'search'")
    assert parent.info.status == "FAILED" and parent.data.tags["ssgan.trials_failed"] == "3"


@pytest.mark.integration
def test_a_stop_after_a_trials_last_safe_point_ends_the_search_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while a trial exported its model (after its last safe point) used to be
    forgotten when the next trial began: the search ran on and ended FINISHED, exit 0."""
    from ssgan.training.job import stop_signals

    def trial_signalled_at_its_end(cfg) -> RunSummary:
        with stop_signals():  # as train() does, inside the search's own block
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        return _trained("0" * 32)

    calls = _fake_trials(monkeypatch, trial_signalled_at_its_end)
    before = signal.signal(signal.SIGTERM, lambda *_: None)  # old code: not the test's end
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            _search(["search=smoke", *tiny_overrides(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert len(calls) == 1 and stopped.value.exit_status == 128 + signal.SIGTERM
    (parent,) = _client(tmp_path).search_runs(["0", "1"], "tags.`ssgan.sweep_kind` = 'search'")
    assert parent.info.status == "KILLED"


@pytest.mark.integration
def test_a_job_its_launcher_lost_is_one_line_naming_its_log_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grid sweep's job under submitit that died without a result (``kill -9``) made
    Hydra print the launcher's traceback; now one line names the job's log and the run it
    left RUNNING (with how to continue it), exit status 1, the parent run FAILED. A job
    that printed its own ``error:`` line is named by it."""
    from ssgan.sweeps.grid import grid_parent
    from ssgan.tracking.lease import lease_value
    from ssgan.tracking.tags import LEASE_TAG
    from ssgan.tracking.tracker import create_run

    tracking = _store(tmp_path)
    tags = {"ssgan.sweep_kind": "grid", "ssgan.swept_params": ""}
    argv = ["-m", "hydra/launcher=submitit_local"]
    killed, failed = (create_run(tracking, name, tags, {}) for name in ("killed", "failed"))
    left = create_run(tracking, "job", {"mlflow.parentRunId": killed.run_id}, {})
    alive = {"mlflow.parentRunId": killed.run_id, LEASE_TAG: lease_value(60)}  # this process
    other = create_run(tracking, "other job", alive, {})  # another job of the sweep, alive
    jobs = tmp_path / "multirun" / ".submitit" / "123"
    jobs.mkdir(parents=True)
    (jobs / "123_0_log.out").write_text("run_id: x (started)\n")
    (jobs / "123_0_log.err").write_text("")
    # What submitit raises, word for word (submitit's own class is not imported here: its
    # import ties a log handler to the stream this test captures, which pytest then closes).
    lost = RuntimeError(
        f"Job 123 (task: 0) with path {jobs}/123_0_result.pkl\n"
        "has not produced any output (state: FINISHED)\n"
        f"No error stream produced. Look at stdout: {jobs}/123_0_log.out\n" + "-" * 40
    )
    with pytest.raises(SystemExit) as exited, grid_parent(killed, argv):
        assert os.environ["HYDRA_FULL_ERROR"] == "1"  # Hydra raises, we print
        raise lost
    assert exited.value.code == 1 and "HYDRA_FULL_ERROR" not in os.environ
    line = capsys.readouterr().err
    assert line == (
        "error: a job of this sweep ended without a result (killed, or out of memory or "
        f"time); its log: {jobs}/123_0_log.err and {jobs}/123_0_log.out; run {left.run_id} "
        f"is left RUNNING: python -m ssgan.train resume={left.run_id} (or the same command "
        f"with resume=auto hydra.sweep.dir={tmp_path / 'multirun'}) continues it from its "
        "last checkpoint; run "
        f"{other.run_id} is still trained by pid {os.getpid()} on {socket.gethostname()}\n"
    )

    (jobs / "123_0_log.err").write_text("warning: slow\nerror: data.root=/x: no such folder\n")
    with pytest.raises(SystemExit), grid_parent(failed, argv):
        raise lost
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith(
        "error: a job of this sweep failed (data.root=/x: no such folder); its log: "
    ), line
    client = _client(tmp_path)
    assert [client.get_run(p.run_id).info.status for p in (killed, failed)] == ["FAILED"] * 2


@pytest.mark.integration
def test_a_stopped_grid_sweep_ends_killed(tmp_path: Path) -> None:
    """A grid sweep's job stopped by SIGTERM exits 143 (a SystemExit, not a
    KeyboardInterrupt): the parent was marked FAILED. A stop after the last job's last
    safe point was forgotten: the parent ended FINISHED."""
    from ssgan.stopping import request_stop
    from ssgan.sweeps.grid import grid_parent
    from ssgan.tracking.tracker import create_run

    tracking = _store(tmp_path)
    tags = {"ssgan.sweep_kind": "grid", "ssgan.swept_params": "train.seed"}
    stopped_job, late_stop = (create_run(tracking, name, tags, {}) for name in ("job", "late"))
    with pytest.raises(SystemExit), grid_parent(stopped_job, ["-m", "train.seed=0,1"]):
        sys.exit(128 + signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), grid_parent(late_stop, ["-m", "train.seed=0,1"]):
        request_stop(signal.SIGTERM)
    client = _client(tmp_path)
    assert [client.get_run(p.run_id).info.status for p in (stopped_job, late_stop)] == [
        "KILLED",
        "KILLED",
    ]


@pytest.mark.unit
def test_search_smoke_alone_trains_at_the_smoke_scale(tmp_path: Path) -> None:
    """search=smoke brings the smoke experiment (seconds, not the full-size default); the
    study is the one `search=smoke experiment=smoke` always made; a command line that
    chooses another experiment keeps it."""
    store = [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    alone = prepare(["search=smoke", *store])
    assert (alone.base.model.z_size, alone.base.train.epochs) == (16, 2)
    assert alone.base.train.steps_per_epoch == 8 and alone.base.data.train_size == 1200
    assert alone.base_overrides == ["experiment=smoke", *store]
    spelled = prepare(["search=smoke", "experiment=smoke", *store])
    assert alone.study_name == spelled.study_name
    other = prepare(["search=smoke", "experiment=label_budget_small", *store])
    assert other.base_overrides == ["experiment=label_budget_small", *store]
    assert prepare(["search=ssgan_lr", *store]).base_overrides == store  # no preset choice
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.unit
def test_a_search_preset_from_the_users_folder(tmp_path: Path) -> None:
    """--config-dir DIR: search=<name> from the user's folder; every worker gets the
    folder (absolute) on its command line."""
    from ssgan.sweeps.workers import worker_argv

    (tmp_path / "mine" / "search").mkdir(parents=True)
    (tmp_path / "mine" / "search" / "mine.yaml").write_text(
        "name: mine\nn_trials: 2\nbaseline: false\n"
        "space:\n  train:\n    lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n"
    )
    store = tiny_overrides(tmp_path, seeded=False)
    argv = ["--config-dir", str(tmp_path / "mine"), "search=mine", *store]
    plan = prepare(argv)
    assert (plan.search.name, plan.search.n_trials) == ("mine", 2)
    assert plan.base_overrides == store
    assert worker_argv(plan, [*argv, "search.workers=2"])[:3] == [
        "--config-dir", str(tmp_path / "mine"), "search=mine"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--config-dir nowhere: there is no folder"):
        prepare(["--config-dir", "nowhere", "search=mine", *store])
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "sampler"),
    [("tpe", "TPESampler"), ("random", "RandomSampler"), ("qmc", "QMCSampler"),
     ("nsga2", "NSGAIISampler"), ("cmaes", "CmaEsSampler"), ("gp", "GPSampler")],
)  # fmt: skip
def test_every_optuna_sampler_is_offered_seeded(name: str, sampler: str) -> None:
    """search.sampler: Optuna's samplers; the same seed proposes the same trials; one
    whose package is missing is refused in one line naming what to install."""
    import importlib.util

    import optuna

    from ssgan.config import SearchConfig
    from ssgan.sweeps.space import check_sampler_installed, make_sampler

    needs = {"cmaes": "cmaes", "gp": "torch"}.get(name)
    if needs and importlib.util.find_spec(needs) is None:
        with pytest.raises(ConfigError) as refused:
            check_sampler_installed(name)
        assert f"search.sampler={name} needs the {needs} package" in str(refused.value)
        assert f"pip install 'ssgan[{name}]'" in str(refused.value)
        return
    check_sampler_installed(name)
    search = SearchConfig(name="s", sampler=name, n_random_trials=2, seed=7)
    assert type(make_sampler(search)).__name__ == sampler

    def draws() -> list[dict]:
        study = optuna.create_study(direction="maximize")
        for _ in range(4):
            study.sampler = make_sampler(search, offset=len(study.trials))
            trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            study.tell(trial, x * (1 - trial.suggest_float("y", 0.0, 1.0)))
        return [t.params for t in study.trials]

    first = draws()
    assert first == draws() and len({t["x"] for t in first}) == 4


@pytest.mark.unit
def test_a_missing_sampler_package_is_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    import importlib.util

    if importlib.util.find_spec("cmaes") is not None:
        pytest.skip("cmaes is installed here")
    with pytest.raises(ConfigError) as refused:
        prepare(["search=smoke", *tiny_overrides(tmp_path, seeded=False), "search.sampler=cmaes"])
    assert str(refused.value).startswith("search.sampler=cmaes needs the cmaes package")
    assert "\n" not in str(refused.value) and not (tmp_path / "mlruns").exists()


@pytest.mark.integration
# Leaving a study as an earlier version did takes Optuna's experimental setter.
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_study_names_its_objective(tmp_path: Path) -> None:
    """optuna-dashboard shows the objective's name: the validation accuracy; a study
    begun before it was named gets the name when a worker opens it again."""
    plan = prepare(["search=smoke", *tiny_overrides(tmp_path)])
    study, created = tune.open_study(plan)
    assert created and study.metric_names == ["val_accuracy"]
    study.set_metric_names(["Objective 0"])  # as an earlier version left it (unnamed)
    again, created = tune.open_study(plan)
    assert not created and again.metric_names == ["val_accuracy"]


@pytest.mark.integration
def test_a_search_prints_where_its_study_lives(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a worker starts, the study's storage (optuna-dashboard opens it) is printed."""
    plan = prepare(["search=smoke", *tiny_overrides(tmp_path)])
    monkeypatch.setattr(tune, "_work", lambda *args: False)  # no trial: only the start
    with pytest.raises(UserError, match="no trial completed"):
        tune.run_search(plan)
    storage = tmp_path / "mlruns" / "optuna.journal"
    assert f"search {plan.study_name}: study storage {storage}\n" in capsys.readouterr().out


@pytest.mark.unit
def test_a_url_storage_is_shown_without_its_password() -> None:
    from ssgan.sweeps.storage import shown_storage

    assert (
        shown_storage("postgresql://me:s3cr@t@db:5432/optuna")
        == "postgresql://me:***@db:5432/optuna"
    )
    assert shown_storage("postgresql://me@db/optuna") == "postgresql://me@db/optuna"
    assert shown_storage("/runs/optuna.journal") == "/runs/optuna.journal"


@pytest.mark.e2e
def test_tune_takes_hydras_flags(tmp_path: Path) -> None:
    """--help lists the search group and the training groups; --cfg job prints what the
    trials start from and the search (search=smoke alone: the smoke scale), from the
    user's --config-dir too; a bad override is one line; nothing is written."""
    shown = run_cli("ssgan.tune", "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (
        "search: smoke, ssgan_lr" in shown.stdout
        and "model: improved_gan, tutorial" in shown.stdout
    )
    (tmp_path / "mine" / "search").mkdir(parents=True)
    (tmp_path / "mine" / "search" / "mine.yaml").write_text(
        "defaults:\n  - override /experiment@_global_.experiment: smoke\n"
        "name: mine\nn_trials: 2\n"
        "space:\n  train:\n    lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n"
    )
    job = run_cli("ssgan.tune", "--config-dir", "mine", "search=mine", "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    assert "z_size: 16" in job.stdout and "name: mine" in job.stdout and "n_trials: 2" in job.stdout
    bad = run_cli("ssgan.tune", "--cfg", "job", "search=nope", cwd=tmp_path)
    assert bad.returncode == 2
    assert (
        bad.stderr.startswith("error: override 'search=nope'")
        and "(available: smoke, ssgan_lr)" in bad.stderr
    )
    assert bad.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
