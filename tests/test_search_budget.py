"""The search budget: which trials hold the search.n_trials slots and which count, on
hand-made trials (the storage's races are tests/test_search_workers.py's)."""

from __future__ import annotations

import datetime as dt

import pytest
from optuna.trial import FrozenTrial, TrialState

from ssgan.sweeps.study import EXCESS_ATTR, Budget, budget, counts
from ssgan.sweeps.trials import ERROR_ATTR

pytestmark = pytest.mark.unit

COMPLETE, PRUNED, FAIL = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL
RUNNING, WAITING = TrialState.RUNNING, TrialState.WAITING


def trial(
    number: int,
    state: TrialState,
    *,
    user_attrs: dict | None = None,
    retries: tuple[int, ...] = (),
    ended_s_ago: float = 1.0,
) -> FrozenTrial:
    """A trial as the study holds it; ``retries``: the trials it continues (Optuna's
    retry marks, oldest first)."""
    now = dt.datetime.now()
    finished = state in (COMPLETE, PRUNED, FAIL)
    system_attrs = {"failed_trial": retries[0], "retry_history": list(retries)} if retries else {}
    return FrozenTrial(
        number=number, state=state, value=0.5 if state == COMPLETE else None,
        datetime_start=now - dt.timedelta(seconds=ended_s_ago + 10),
        datetime_complete=now - dt.timedelta(seconds=ended_s_ago) if finished else None,
        params={}, distributions={}, user_attrs=user_attrs or {}, system_attrs=system_attrs,
        intermediate_values={}, trial_id=number,
    )  # fmt: skip


class Study:
    """The one thing the budget reads of a study."""

    def __init__(self, *trials: FrozenTrial) -> None:
        self.trials = list(trials)

    def get_trials(self, deepcopy: bool = True) -> list[FrozenTrial]:
        return self.trials


def test_completed_pruned_and_diverged_trials_use_their_slot() -> None:
    assert counts(trial(0, COMPLETE)) and counts(trial(1, PRUNED))
    assert counts(trial(2, FAIL, user_attrs={ERROR_ATTR: "train/d_loss became nan"}))
    assert not counts(trial(3, FAIL))  # given back by its worker: no training result
    assert not counts(trial(4, RUNNING)) and not counts(trial(5, WAITING))


def test_slots_go_in_trial_number_order_and_a_retry_keeps_its_predecessors() -> None:
    state = Budget(3, holders=[0, 1, 2, 4], retries={3})
    assert [state.is_excess(n) for n in (0, 2, 3, 4)] == [False, False, False, True]
    assert not state.can_take  # three slots, four holders, nothing queued
    assert Budget(3, holders=[0, 1, 2], waiting=1).can_take  # a queued retry may be taken
    assert Budget(3, holders=[0, 1]).can_take and not Budget(3, holders=[0, 1]).done


def test_a_study_mid_search() -> None:
    """0 completed, 1 diverged, 2 given back a moment ago and queued again as 3, 4 drawn
    by a worker racing for the last slot: 0, 1 and 2 hold the three slots, 3 continues
    2's, 4 is excess; two have counted, so the search is not done and 3 may be taken."""
    state = budget(
        Study(
            trial(0, COMPLETE),
            trial(1, FAIL, user_attrs={ERROR_ATTR: "diverged"}),
            trial(2, FAIL),
            trial(3, WAITING, retries=(2,)),
            trial(4, RUNNING),
        ),
        3,
    )
    assert state.holders == [0, 1, 2, 4] and state.retries == {3}
    assert [t.number for t in state.counted] == [0, 1] and not state.done
    assert state.is_excess(4) and state.waiting == 1 and state.can_take
    assert [t.number for t in state.running] == [4]


def test_a_lost_trial_frees_its_slot_and_an_excess_one_never_counts() -> None:
    """Trial 1 failed uncounted 2 minutes ago and nobody retried it (its worker died while
    giving it back): its slot goes to the next trial, so 0, 2 and 3 complete the budget;
    trial 4, marked excess when it was drawn, does not count though it completed."""
    state = budget(
        Study(
            trial(0, COMPLETE),
            trial(1, FAIL, ended_s_ago=120),
            trial(2, COMPLETE),
            trial(3, COMPLETE),
            trial(4, COMPLETE, user_attrs={EXCESS_ATTR: True}),
        ),
        3,
    )
    assert state.holders == [0, 2, 3] and [t.number for t in state.counted] == [0, 2, 3]
    assert state.done and not state.can_take
