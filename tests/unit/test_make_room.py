"""Moving running work so that work starting now starts on a cleaner site."""

from __future__ import annotations

import numpy as np
import pytest

from evals.harness import RerouteLimitError, account, segments, simulate
from evals.policies import BrokerPolicy
from evals.policy_base import Decision, HourState
from evals.view import GridView
from tests.evals_helpers import make_fleet, make_jobs, make_window
from tools.broker.make_room import best_trial
from tools.broker.planner import PlanGrid, PlanJob, PlanResult, RunningJob, Slot, plan_hour

CAP = np.array([8.0, 8.0, 8.0])
H = 12


def _grid(*per_site: float, committed: np.ndarray | None = None) -> PlanGrid:
    ci = np.repeat(np.array(per_site, dtype=float)[:, None], H, axis=1)
    used = np.zeros((3, H)) if committed is None else committed
    return PlanGrid(ci, np.zeros_like(ci), CAP, used, np.ones(3))


def _used(rows: dict[int, tuple[float, int]]) -> np.ndarray:
    used = np.zeros((3, H))
    for site, (gpus, length) in rows.items():
        used[site, :length] += gpus
    return used


def _rate(grid: PlanGrid) -> np.ndarray:
    return grid.ci / 1000.0


BIG = PlanJob("big", 8.0, 10, 0)


def _none(jobs: list[PlanJob]) -> np.ndarray:
    return np.zeros((len(jobs), 3))


def _on(site: int, grid: PlanGrid) -> PlanResult:
    return PlanResult([Slot("big", site, 0, float(_rate(grid)[site, :10].sum() * 8))])


def test_the_job_with_most_to_gain_takes_a_site_freed_by_moving_running_work() -> None:
    # Site 0 (clean) holds a 1-GPU job for 10 more hours and site 1 (dirtiest) has the 8-GPU
    # job without slack; moving the small job to site 2 frees site 0.
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    trial = best_trial(_on(1, grid), [BIG], grid, _rate(grid), _none([BIG]), [small])
    assert trial is not None
    assert (trial.job.key, trial.site, trial.cost) == ("big", 0, pytest.approx(8.0))
    assert [(r.key, dest) for r, dest, _, _ in trial.moves] == [("small", 2)]
    assert trial.moves[0][2:] == (pytest.approx(1.0), pytest.approx(3.0))
    assert trial.committed[0].tolist() == [8.0] * 10 + [0.0] * 2
    assert trial.committed[2].tolist() == [1.0] * 10 + [0.0] * 2


def test_no_trial_below_the_threshold_without_moves_left_or_without_anywhere_to_go() -> None:
    used = _used({0: (1.0, 10)})
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    # 8*10*0.4 + 10*0.5 = 37 against 40 + 4 = 44: 16 % less, below 25 %.
    close = _grid(400.0, 500.0, 500.0, committed=used)
    assert best_trial(_on(1, close), [BIG], close, _rate(close), _none([BIG]), [small]) is None
    far = _grid(100.0, 500.0, 300.0, committed=used)
    spent = RunningJob("small", 0, 1.0, 10, moves_left=0)
    assert best_trial(_on(1, far), [BIG], far, _rate(far), _none([BIG]), [spent]) is None
    full = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10), 1: (8.0, H), 2: (8.0, H)}))
    assert (
        best_trial(PlanResult(unplaced=["big"]), [BIG], full, _rate(full), _none([BIG]), [small])
        is None
    )


def test_the_blocking_charge_on_the_freed_site_counts_against_the_move() -> None:
    # Without the charge site 0 saves 40 + 1 - 8 - 3 = 30; with a charge of 30 there for the
    # large job (the plan prices every slot with it) it saves nothing, so no trial.
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    charge = np.array([[30.0, 0.0, 0.0]])
    assert best_trial(_on(1, grid), [BIG], grid, _rate(grid), charge, [small]) is None
    trial = best_trial(_on(1, grid), [BIG], grid, _rate(grid), charge / 10, [small])
    assert trial is not None and (trial.cost, trial.charge) == (pytest.approx(8.0), 3.0)


def test_a_site_with_room_already_is_left_to_the_plan() -> None:
    grid = _grid(100.0, 500.0, 300.0)
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    assert best_trial(_on(1, grid), [BIG], grid, _rate(grid), _none([BIG]), [small]) is None


def test_only_the_running_jobs_needed_move_for_a_job_that_fits_nowhere() -> None:
    # Site 0 holds 2 GPUs for 3 h (a) and 1 GPU for 10 h (b): 5 GPUs are free for 3 h, then 7.
    # The 7-GPU job lacks 2 GPUs for 3 h, so only a moves; it fits nowhere else.
    used = _used({0: (3.0, 3), 1: (8.0, H), 2: (6.0, H)})
    used[0, 3:10] += 1.0
    grid = _grid(500.0, 100.0, 900.0, committed=used)
    a = RunningJob("a", 0, 2.0, 3, moves_left=5)
    b = RunningJob("b", 0, 1.0, 10, moves_left=5)
    job = PlanJob("j", 7.0, 10, 0)
    trial = best_trial(PlanResult(unplaced=["j"]), [job], grid, _rate(grid), _none([job]), [a, b])
    assert trial is not None and trial.site == 0
    assert [(r.key, dest) for r, dest, _, _ in trial.moves] == [("a", 2)]


def test_plan_hour_moves_running_work_and_replans_the_free_work_around_it() -> None:
    # A deferrable job would run on site 0 too; once the large job holds site 0 it goes to 2.
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    later = PlanJob("later", 1.0, 2, 5)
    without = plan_hour([BIG, later], grid, time_budget_s=5.0)
    assert {s.key: s.site for s in without.slots} == {"big": 2, "later": 0}
    assert not without.moves
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    result = plan_hour([BIG, later], grid, time_budget_s=5.0, running=[small])
    slots = {s.key: (s.site, s.start) for s in result.slots}
    assert slots["big"] == (0, 0)
    assert slots["later"][0] == 2
    [move] = result.moves
    assert (move.key, move.from_site, move.to_site, move.for_key) == ("small", 0, 2, "big")
    assert move.cost_after < 0.75 * move.cost_before


def test_a_job_with_slack_that_the_plan_starts_now_gets_room_deferred_or_waiting_work_not() -> None:
    # "big" could wait 2 h, but site 0 stays full for 10 h: waiting does not free it, so the
    # plan starts it now on a dirtier site, where it would hold the GPUs for all its 10 hours.
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    patient = PlanJob("big", 8.0, 10, 2)
    trial = best_trial(_on(2, grid), [patient], grid, _rate(grid), _none([patient]), [small])
    assert trial is not None and (trial.site, [r.key for r, *_ in trial.moves]) == (0, ["small"])
    later = PlanResult([Slot("big", 2, 1, 24.0)])
    assert best_trial(later, [patient], grid, _rate(grid), _none([patient]), [small]) is None
    waiting = PlanResult(unplaced=["big"])  # it can wait for the next plan
    assert best_trial(waiting, [patient], grid, _rate(grid), _none([patient]), [small]) is None
    plan = plan_hour([patient], grid, time_budget_s=5.0, running=[small])
    assert [(s.key, s.site, s.start) for s in plan.slots] == [("big", 0, 0)]
    assert [(m.key, m.to_site) for m in plan.moves] == [("small", 2)]


def test_no_trial_when_the_budget_has_no_time_left_for_a_second_plan() -> None:
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    spent = plan_hour([BIG], grid, time_budget_s=1e-9, running=[small])
    assert spent.slots[0].site == 2 and not spent.moves
    unbounded = plan_hour([BIG], grid, time_budget_s=0.0, running=[small])  # greedy only
    assert unbounded.slots[0].site == 0 and len(unbounded.moves) == 1


def test_no_move_when_the_replan_would_leave_other_work_unplaced() -> None:
    # The deferrable job may run only on site 0 and must end within 6 h: with the large job
    # there for 10 h it would fit nowhere, so the plan stands.
    grid = _grid(100.0, 500.0, 300.0, committed=_used({0: (1.0, 10)}))
    only_zero = PlanJob("only0", 1.0, 4, 2, eligible=np.array([True, False, False]))
    small = RunningJob("small", 0, 1.0, 10, moves_left=5)
    result = plan_hour([BIG, only_zero], grid, time_budget_s=5.0, running=[small])
    assert not result.moves
    assert {s.key: s.site for s in result.slots} == {"big": 2, "only0": 0}


class Scripted:
    """Start job 0 on zone 0 at hour 0; then move it as told."""

    name = "scripted"
    causal = True

    def __init__(self, moves: dict[int, list[tuple[int, int]]]) -> None:
        self.moves = moves

    def decide(self, state: HourState, view: GridView) -> Decision:
        starts = [(int(j), 0) for j in state.pending if state.now == 0]
        return Decision(starts=starts, moves=self.moves.get(state.now, []))


def _two_jobs_window() -> tuple[object, object]:
    ci = np.full((2, 30), 100.0)
    ci[1] = 400.0
    return make_window(ci), make_jobs([0, 1], [8, 1], [1.0, 1.0], [0, 20], [0, 0])


def test_harness_accounts_a_moved_job_segment_by_segment() -> None:
    window, jobs = _two_jobs_window()
    fleet = make_fleet([2.0, 2.0], kw=[1.0, 0.5])
    run = simulate(
        Scripted({2: [(0, 1)]}),
        jobs=jobs,
        fleet=fleet,
        window=window,
        forecast="perfect",
        decide_hours=4,
    )
    o = run.outcome
    assert (o.start[0], o.zone[0], o.reroutes[0], o.moves) == (0, 0, 1, ((0, 2, 1),))
    assert o.co2_kg[0] == pytest.approx((2 * 1.0 * 100.0 + 6 * 0.5 * 400.0) / 1000)
    assert o.energy_kwh[0] == pytest.approx(2 * 1.0 + 6 * 0.5)
    assert o.customer_minor[0] == 8 * 100
    assert not o.missed[0]
    pieces, owner, start, zone = segments(jobs, o.start, o.zone, o.moves)
    assert owner.tolist() == [0, 0] and start.tolist() == [0, 2] and zone.tolist() == [0, 1]
    _, co2, _, _ = account(pieces, fleet, window, start, zone)
    assert co2.tolist() == pytest.approx([2 * 100.0 / 1000, 6 * 0.5 * 400.0 / 1000])


def test_harness_refuses_bad_moves() -> None:
    window, jobs = _two_jobs_window()
    fleet = make_fleet([2.0, 1.0])

    def sim(moves: dict[int, list[tuple[int, int]]]) -> object:
        return simulate(
            Scripted(moves),
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast="perfect",
            decide_hours=10,
        )

    with pytest.raises(ValueError, match="not running"):
        sim({9: [(0, 1)]})  # job 0 ended at hour 8
    with pytest.raises(ValueError, match="cannot move to zone 0"):
        sim({1: [(0, 0)]})
    with pytest.raises(RerouteLimitError):
        sim({h: [(0, h % 2)] for h in range(1, 7)})


def test_harness_keeps_a_job_where_it_is_when_the_new_zone_is_full() -> None:
    window, jobs = _two_jobs_window()
    jobs = make_jobs([0, 0], [6, 6], [1.0, 1.0], [0, 0], [0, 0])
    fleet = make_fleet([2.0, 1.0])

    class FillThenMove(Scripted):
        def decide(self, state: HourState, view: GridView) -> Decision:
            if state.now == 0:
                return Decision(starts=[(0, 0), (1, 1)])
            return Decision(moves=[(0, 1)] if state.now == 1 else [])

    run = simulate(
        FillThenMove({}),
        jobs=jobs,
        fleet=fleet,
        window=window,
        forecast="perfect",
        decide_hours=4,
    )
    assert (run.outcome.zone[0], run.outcome.reroutes[0], run.outcome.moves) == (0, 0, ())


def test_broker_moves_a_small_job_off_the_clean_site_for_a_large_one() -> None:
    # Zone 0 is clean, 1 dirty, 2 in between; each holds 8 GPUs. A 1-GPU, 20 h job without
    # slack takes zone 0; two hours later an 8-GPU, 10 h job without slack arrives.
    ci = np.full((3, 60), 500.0)
    ci[0], ci[2] = 50.0, 200.0
    jobs = make_jobs([0, 2], [20, 10], [1.0, 8.0], [0, 0], [0, 0])
    run = simulate(
        BrokerPolicy(),
        jobs=jobs,
        fleet=make_fleet([8.0, 8.0, 8.0]),
        window=make_window(ci),
        forecast="perfect",
        decide_hours=10,
    )
    o = run.outcome
    assert (o.start[1], o.zone[1]) == (2, 0)
    assert (o.zone[0], o.reroutes[0], o.moves) == (0, 1, ((0, 2, 2),))
    assert o.co2_kg[0] == pytest.approx((2 * 50.0 + 18 * 200.0) / 1000)
    assert not o.missed.any()
