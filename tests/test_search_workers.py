"""Searches shared by many worker processes: the trial budget across workers, dead workers'
trials queued again and continued, and (slow) real workers started, killed and restarted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from ssgan.errors import UserError
from ssgan.sweeps import study as search
from ssgan.sweeps import trials
from ssgan.sweeps.plan import prepare
from ssgan.sweeps.storage import load_existing, open_storage
from ssgan.sweeps.trial_lease import (
    LEASE_ATTR,
    release,
    requeue_dead_trials,
    retried_numbers,
    retry_of,
)
from ssgan.sweeps.workers import WorkerEnd, search_outcome
from ssgan.tracking.lease import lease_value
from ssgan.tracking.tracker import create_run
from ssgan.training import run as training_run
from ssgan.training.summary import RunSummary
from tests.helpers.configs import tiny_overrides
from tests.helpers.processes import run_cli

SMOKE = ["search=smoke", "search.pruner.name=none"]
DEAD_HERE = f"{socket.gethostname()}:999999999:1 {time.time() + 3600:.0f}"  # no such pid


def _trained(run_id: str) -> RunSummary:
    """What a faked training run returns: one epoch, validation accuracy 0.5."""
    return RunSummary(run_id, steps=1, best_val_accuracy=0.5, best_test_accuracy=0.5, best_epoch=1)


def _worker_view(path: Path, name: str = "s") -> optuna.Study:
    """The study as one worker process sees it: its own storage object on the file."""
    return optuna.load_study(study_name=name, storage=open_storage(str(path)))


@pytest.mark.integration
def test_the_budget_is_exact_when_workers_race_for_the_last_trial(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(str(journal)))
    one, two = _worker_view(journal), _worker_view(journal)
    first = [one.ask() for _ in range(2)]
    late = [two.ask(), one.ask()]  # both workers see one free slot of 3 and draw
    state = search.budget(one, 3)
    assert [state.is_excess(t.number) for t in first + late] == [False, False, False, True]
    late[1].set_user_attr(search.EXCESS_ATTR, True)
    one.tell(late[1], state=TrialState.FAIL)
    assert not search.budget(two, 3).can_take  # every slot is taken: nothing more to draw
    # A trial given back (its worker stopped) is queued again: a retry, no new slot.
    assert release(two, two.trials[first[1].number])
    state = search.budget(one, 3)
    assert state.can_take and state.waiting == 1 and len(state.holders) == 3
    retry = one.ask()
    assert retry_of(one.trials[retry.number]) == first[1].number
    assert not search.budget(one, 3).is_excess(retry.number)
    for trial in (first[0], late[0], retry):
        one.tell(trial, 0.5)
    state = search.budget(two, 3)
    assert state.done and len(state.counted) == 3
    # A trial whose training diverged used its slot; an excess or given-back one did not.
    assert [search.counts(t) for t in two.trials] == [True, False, True, False, True]


@pytest.mark.integration
def test_a_dead_workers_trial_is_queued_once_and_a_live_ones_never(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(str(journal)))
    one, two = _worker_view(journal), _worker_view(journal)
    live, dead, fresh, remote_live, remote_dead = (
        one.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(5)
    )
    live.set_user_attr(LEASE_ATTR, lease_value(60))  # this process: alive
    dead.set_user_attr(LEASE_ATTR, DEAD_HERE)  # this host, a process that is gone
    dead.report(0.25, 1)
    remote_live.set_user_attr(LEASE_ATTR, f"elsewhere:1:1 {time.time() + 60:.0f}")
    remote_dead.set_user_attr(LEASE_ATTR, f"elsewhere:1:1 {time.time() - 1:.0f}")
    # fresh: taken a moment ago, its worker has not written its lease yet: alive
    assert requeue_dead_trials(two, lease_s=60) == [dead.number, remote_dead.number]
    assert requeue_dead_trials(one, lease_s=60) == []  # another worker was first
    retries = one.get_trials(states=(TrialState.WAITING,))
    assert [retry_of(r) for r in retries] == [dead.number, remote_dead.number]
    first = retries[0]
    assert first.params == one.trials[dead.number].params
    assert first.intermediate_values == {1: 0.25}  # the pruner keeps what it was told
    assert retried_numbers(first) == [dead.number]
    running, failed = TrialState.RUNNING, TrialState.FAIL
    assert [t.state for t in one.trials[:5]] == [running, failed, running, running, failed]
    assert not any(search.counts(t) for t in one.trials)  # a dead worker uses no budget


@pytest.mark.e2e
def test_a_zombie_owns_no_lease() -> None:
    """A worker killed while its launcher waits on another stays a zombie until reaped: its
    trial's lease must read as free (a search waited forever on one)."""
    from ssgan.tracking.lease import owner_alive

    child = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = stat.read_text().rsplit(")", 1)[1].split()[19]
    lease = f"{socket.gethostname()}:{child.pid}:{started} {time.time() + 60:.0f}"
    assert owner_alive(lease, "trial 0") is None
    child.wait()


@pytest.mark.integration
def test_a_retried_trial_continues_its_predecessors_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial of a worker killed mid-training: the retry resumes that run (not a new
    one from step 0), renumbered; a run that had ended is recorded as it ended."""
    plan = prepare([*SMOKE, "search.n_trials=2", *tiny_overrides(tmp_path)])
    study, created = search.open_study(plan)
    parent = search.parent_run(plan, study, created)
    runs = []
    for status in ("RUNNING", "FINISHED"):
        trial = study.ask()
        trials.trial_values(plan, study, trial)
        trial.set_user_attr(LEASE_ATTR, DEAD_HERE)
        run = create_run(
            plan.store,
            f"smoke-trial-{trial.number}",
            {"mlflow.parentRunId": parent.run_id, "ssgan.trial": str(trial.number)},
            {},
        )
        if status == "FINISHED":
            run.log_metrics({"best/val_accuracy": 0.75, "best/test_accuracy": 0.7}, 1)
            run.finish("FINISHED")
        runs.append(run.run_id)
    assert requeue_dead_trials(study, plan.lease_s) == [0, 1]
    resumed = []
    monkeypatch.setattr(
        training_run,
        "train",
        lambda cfg, on_epoch_end=None, tags=None, job=None: (
            resumed.append(cfg.resume) or _trained(cfg.resume)
        ),
    )
    summary = search.run_search(plan)
    assert resumed == [runs[0]]  # the finished run was recorded, not trained again
    assert summary.complete == 2 and summary.best_value == 0.75
    client = MlflowClient(plan.base.tracking.uri)
    assert client.get_run(runs[0]).data.tags["ssgan.trial"] == "2"  # the retry's number
    assert client.get_run(parent.run_id).info.status == "FINISHED"


@pytest.mark.integration
def test_the_command_fails_only_when_its_search_did_not_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After its workers end, ``search.workers=N`` exits by the study: short of the budget,
    one line with how each worker ended and the worst status; complete, 0 and a line
    naming the dead worker's trial and the trial that continued it."""
    plan = prepare([*SMOKE, "search.n_trials=2", *tiny_overrides(tmp_path)])
    study, created = search.open_study(plan)
    search.parent_run(plan, study, created)
    held = study.ask()  # worker 0's trial: its lease names worker 0, which then died
    trials.trial_values(plan, study, held)
    held.set_user_attr(LEASE_ATTR, DEAD_HERE)
    assert requeue_dead_trials(study, plan.lease_s) == [held.number]
    pid = int(DEAD_HERE.split(":")[1])
    killed = WorkerEnd("worker 0", 128 + signal.SIGKILL, pid, killed_by=signal.SIGKILL)
    stopped = WorkerEnd("worker 1", 130, pid - 1)  # Ctrl-C: it gave its trial back

    assert search_outcome(plan, [killed, stopped]) == 137
    assert capsys.readouterr().err == (
        f"error: the workers ended before the search did (0 of 2 trials; worker 0 (pid {pid}) "
        f"was killed by SIGKILL; worker 1 (pid {pid - 1}) exited 130); their lines above say "
        "why; run the same command to continue it\n"
    )
    for _ in range(2):  # the retry of worker 0's trial, and the last trial
        trial = study.ask()
        trials.trial_values(plan, study, trial)
        study.tell(trial, 0.5)
    (retry,) = [t.number for t in study.trials if held.number in retried_numbers(t)]
    assert search_outcome(plan, [killed, replace(stopped, status=0)]) == 0
    shown = capsys.readouterr()
    assert shown.err == (
        f"warning: worker 0 (pid {pid}) was killed by SIGKILL during trial {held.number}; "
        f"trial {retry} continued it; the search completed\n"
    )
    assert "trials: 2 complete, 0 pruned, 0 failed" in shown.out


@pytest.mark.integration
def test_an_rdb_storage_without_its_driver_is_one_line(tmp_path: Path) -> None:
    plan = prepare(
        [
            *SMOKE,
            "search.storage=postgresql://ssgan@localhost/optuna",
            *tiny_overrides(tmp_path, seeded=False),
        ]
    )
    with pytest.raises(UserError, match=r"search.storage=postgresql://.*pip install"):
        search.run_search(plan)
    assert not (tmp_path / "mlruns").exists()


def _saved_step(root: Path, run_id: str) -> int:
    """The step of the newest checkpoint of ``run_id`` in the local store (0: none yet)."""
    for index in (root / "mlruns").glob(f"**/{run_id}/artifacts/checkpoints/last/checkpoint"):
        text = index.read_text()
        return int(text.split('model_checkpoint_path: "ckpt-')[1].split('"')[0])
    return 0


def _read_lines(process: subprocess.Popen, into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(process.stdout), daemon=True)
    thread.start()
    return thread


@pytest.mark.e2e
@pytest.mark.slow
def test_workers_share_a_search_and_a_killed_workers_trial_is_resumed(tmp_path: Path) -> None:
    """``search.workers=2`` on a fresh study; one worker is ``kill -9``ed mid-trial, after
    a checkpoint; the same command started again through ``hydra/launcher=submitit_local``
    (the SLURM launcher's code path) with two workers. Exactly 4 trials, one parent."""
    args = [
        *SMOKE,
        "search.n_trials=4",
        *tiny_overrides(tmp_path),
        "train.sample_grid=false",
        "train.epochs=3",
        "train.steps_per_epoch=6",
        "train.checkpoint_every=3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = subprocess.Popen(
        [sys.executable, "-m", "ssgan.tune", *args, "search.workers=2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    pids: dict[str, str] = {}
    victim = killed_run = victim_name = None
    for line in first.stdout:  # the first worker to start a run is the victim
        seen.append(line)
        worker = line.split("]")[0] + "]"
        if "(worker pid " in line:
            pids[worker] = line.split("(worker pid ")[1].split(")")[0]
        if line.split("] ", 1)[-1].startswith("run_id:"):
            victim, killed_run = pids[worker], line.split("run_id: ")[1].split()[0]
            victim_name = worker.strip("[]")
            break
    assert killed_run, "".join(seen)
    reader = _read_lines(first, seen)
    deadline = time.monotonic() + 300
    while _saved_step(tmp_path, killed_run) < 6 and first.poll() is None:
        assert time.monotonic() < deadline, "".join(seen)
        time.sleep(0.02)  # until epoch 1 (steps 1-6) is logged and checkpointed
    os.kill(int(victim), signal.SIGKILL)
    killed_at_ms = time.time() * 1000
    saved = _saved_step(tmp_path, killed_run)
    assert 6 <= saved < 18, saved  # mid-trial: a checkpoint, and steps still to train

    again = run_cli(
        "ssgan.tune", *args, "search.workers=2", "hydra/launcher=submitit_local",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    # The first command's search completed (its other worker waited for every trial), so
    # it succeeds, and says which worker was killed and which trial continued its own.
    assert first.wait(timeout=900) == 0, "".join(seen)[-3000:]
    reader.join()
    said = re.findall(
        rf"^warning: {victim_name} \(pid {victim}\) was killed by SIGKILL during trial "
        r"(\d+); trial (\d+) continued it; the search completed$",
        "".join(seen),
        re.MULTILINE,
    )
    assert len(said) == 1, "".join(seen)[-3000:]
    output = (
        "".join(seen)
        + again.stdout
        + "".join(p.read_text() for p in tmp_path.glob("search_workers/*/*/.submitit/*/*_log.out"))
    )
    assert again.returncode == 0, again.stderr[-3000:] + output[-3000:]
    assert f"run_id: {killed_run} (resumed)" in output

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (parent,) = client.search_runs(["0", "1"], "tags.`ssgan.sweep_kind` = 'search'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    numbers = [int(r.data.tags["ssgan.trial"]) for r in children]
    assert len(children) == 4 and len(set(numbers)) == 4, numbers
    assert all(r.info.status == "FINISHED" for r in children)
    assert killed_run in {r.info.run_id for r in children}
    after_kill = []
    for key in ("val/accuracy", "train/d_loss"):  # no step logged twice by the resumed trial
        steps = [m.step for m in client.get_metric_history(killed_run, key)]
        assert len(steps) == len(set(steps)), key
        history = client.get_metric_history(killed_run, key)
        after_kill += [m.step for m in history if m.timestamp > killed_at_ms]
    assert after_kill and min(after_kill) > saved, (saved, after_kill)  # not from step 0
    study = load_existing(
        parent.data.tags["ssgan.optuna_storage"], parent.data.tags["ssgan.optuna_study"]
    )
    counted = [t for t in study.trials if search.counts(t)]
    assert len(counted) == 4 and all(t.state == TrialState.COMPLETE for t in counted)
    (held, after), *_ = said
    assert int(held) in retried_numbers(study.trials[int(after)]), said
    assert sorted(t.user_attrs["mlflow_run_id"] for t in counted) == sorted(
        r.info.run_id for r in children
    )


@pytest.mark.unit
def test_a_worker_command_line_survives_hydras_override_parser() -> None:
    """The workers of a Hydra launcher get the command line as one Hydra list override:
    quotes, backslashes, brackets and interpolations come through unchanged."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ssgan.sweeps.workers import hydra_string

    argv = ["search.enqueue=[{train:{epochs:1}}]", "tracking.run_name=it's", "data.root=/a b",
            r"x=a\b", "y=${now:%H}", 'z="q"', "w=a\\'b", "v=a\\", "u=\\\\'"]  # fmt: skip
    override = "argv=[" + ",".join(hydra_string(a) for a in argv) + "]"
    (parsed,) = OverridesParser.create().parse_overrides([override])
    assert parsed.value() == argv


@pytest.mark.integration
def test_a_stopped_worker_gives_its_trial_back_and_the_next_one_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C mid-trial: the trial is queued again at once (not after a lease period), the
    parent is KILLED (no other worker runs), and the same command continues that run."""
    plan = prepare([*SMOKE, "search.n_trials=1", *tiny_overrides(tmp_path)])
    started: list[str] = []

    def stopped_mid_trial(cfg, on_epoch_end=None, tags=None, job=None) -> RunSummary:
        if cfg.resume is None:
            run = create_run(plan.store, "smoke-trial-0", tags, {})
            started.append(run.run_id)
            run.log_metrics({"best/val_accuracy": 0.5, "best/test_accuracy": 0.5}, 1)
            run.finish("KILLED")
            raise KeyboardInterrupt("stopped by SIGINT")
        started.append(f"resumed {cfg.resume}")
        return _trained(cfg.resume)

    monkeypatch.setattr(training_run, "train", stopped_mid_trial)
    with pytest.raises(KeyboardInterrupt):
        search.run_search(plan)
    study = load_existing(plan.storage, plan.study_name)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    client = MlflowClient(plan.base.tracking.uri)
    parent_id = study.user_attrs[search.PARENT_ATTR]
    assert client.get_run(parent_id).info.status == "KILLED"
    summary = search.run_search(plan)
    assert started == [started[0], f"resumed {started[0]}"]
    assert summary.best_run_id == started[0] and summary.complete == 1
    assert client.get_run(parent_id).info.status == "FINISHED"
