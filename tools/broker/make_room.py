"""Make room for work the plan starts now by moving running work off a cleaner site.

A job with no slack starts now or never, so the plan puts it on the cheapest site with room this
hour. When a cleaner site is full because running work holds it, no plan over free work can do
better; moving the running work can. On replayed weeks this is the largest single gap to the
oracle: an 8-GPU, 48-hour job without slack arrives while 1-GPU jobs run on the only clean 8-GPU
site, and goes to a site three times dirtier. The oracle avoids it by knowing the arrival; the
planner, which does not, repairs it when the arrival comes. A job with slack that the plan
starts now gains the same way: waiting did not free the clean site, and once started it holds
the dirty one for all its hours (a deferred large job whose clean site filled with small work
while it waited).

`with_room` (called by `tools.broker.planner.plan_hour` with the running work) takes the job the
plan starts now (or a job without slack that fits nowhere) with the most to gain from an eligible
site it lacks room on: at least `MIN_SAVING` and `REROUTE_THRESHOLD` of its cost, after moving off
that site the fewest running jobs, cheapest to move first, each to its cheapest other site with
room for its hours left. It then re-plans the other free work around that (the job on the site from
now, the moved jobs on their new sites) with the same planner. The new plan replaces the old one
when it leaves no more work unplaced and the forecast cost of the whole plan plus the moved jobs
falls by at least `REROUTE_THRESHOLD` of what the jobs involved (the starting one and the moved
ones) cost before: the broker's 25 % rule, applied to the decision as a whole. One such trial per
plan. A running job moves only while it has moves left of `MAX_REROUTES`; a move is a checkpoint
and restart elsewhere, the hours left running on the new site with no hours lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from tools.broker.plan_types import (
    CAPACITY_EPS,
    FloatArray,
    Move,
    PlanGrid,
    PlanJob,
    PlanResult,
    RunningJob,
    Slot,
)

REROUTE_THRESHOLD = 0.25
"""Least saving, as a share of what the jobs involved cost before, for which running work moves."""
MIN_SAVING = 1.0
"""Least forecast saving (objective units: kg CO2 for `carbon`) for which a trial re-plan runs,
so that small jobs starting now, which gain grams, do not cost a re-plan every hour."""
Replan = Callable[[list[PlanJob], PlanGrid], PlanResult]
Rank = Callable[[PlanResult, list[PlanJob]], tuple[float, float, float, float]]


@dataclass(frozen=True)
class Trial:
    """A job starting now on a site it lacks room on, and the running work moved to make it."""

    job: PlanJob
    site: int
    cost: float
    """The job's forecast cost on `site` from now."""
    charge: float
    """Its blocking charge there (`tools.broker.blocking`), as the plan prices every slot."""
    committed: FloatArray
    """(sites, horizon) GPUs committed with the job on `site` and the moves made."""
    moves: list[tuple[RunningJob, int, float, float]]
    """(running job, new site, its cost where it runs, its cost on the new site)."""


def with_room(
    plan: PlanResult,
    jobs: list[PlanJob],
    grid: PlanGrid,
    rate: FloatArray,
    charge: FloatArray,
    running: Sequence[RunningJob],
    *,
    replan: Replan,
    rank: Rank,
    threshold: float = REROUTE_THRESHOLD,
    min_saving: float = MIN_SAVING,
) -> PlanResult:
    """Return `plan`, or a plan with running work moved that clears the 25 % rule.

    Args:
        plan: The plan of the free `jobs` against `grid`.
        jobs: The free jobs.
        grid: The plan's grid; `committed` counts the running work.
        rate: (sites, horizon) cost per GPU-hour of the plan.
        charge: (jobs, sites) blocking charge of each job per site, as the plan priced it.
        running: Work running now, which may move.
        replan: Plans free jobs against a grid (the planner, without moves).
        rank: Orders plans: unplaced work first, then cost (the planner's).
        threshold: Least saving as a share of what the jobs involved cost before.
        min_saving: Least saving for which a trial re-plan runs.
    """
    trial = best_trial(plan, jobs, grid, rate, charge, running, threshold, min_saving)
    if trial is None:
        return plan
    others = [job for job in jobs if job.key != trial.job.key]
    new = replan(others, replace(grid, committed=trial.committed))
    slots = [*new.slots, Slot(trial.job.key, trial.site, 0, trial.cost, trial.charge)]
    candidate = PlanResult(slots, list(new.unplaced), new.method)
    before, after = rank(plan, jobs), rank(candidate, jobs)
    if after[:3] > before[:3]:
        return plan
    moved_before = sum(m[2] for m in trial.moves)
    total_before = before[3] + moved_before
    total_after = after[3] + sum(m[3] for m in trial.moves)
    own = next((s.cost + s.charge for s in plan.slots if s.key == trial.job.key), None)
    if after[:3] == before[:3] and (
        own is None or total_before - total_after < threshold * (own + moved_before)
    ):
        return plan
    candidate.moves = [
        Move(r.key, trial.site, dest, trial.job.key, total_before, total_after)
        for r, dest, _, _ in trial.moves
    ]
    return candidate


def best_trial(
    plan: PlanResult,
    jobs: list[PlanJob],
    grid: PlanGrid,
    rate: FloatArray,
    charge: FloatArray,
    running: Sequence[RunningJob],
    threshold: float = REROUTE_THRESHOLD,
    min_saving: float = MIN_SAVING,
) -> Trial | None:
    """Return the job starting now and site that gain most by moving running work, or None.

    A (job, site) qualifies when the site is cheaper for the job by at least `min_saving` and
    `threshold` of what the job and the moved work cost now, net of what the moved work costs
    more on its new sites, and running work with moves left can make the room. A job's cost
    on a site includes its blocking charge there (`charge`, jobs x sites), as in the plan.
    """
    capacity, committed = grid.capacity, grid.committed
    horizon = rate.shape[1]
    cum = np.concatenate([np.zeros((rate.shape[0], 1)), np.cumsum(rate, axis=1)], axis=1)

    def cost(site: int, gpus: float, hours: int) -> float:
        return float((cum[site, min(hours, horizon)] - cum[site, 0]) * gpus)

    at = {slot.key: slot for slot in plan.slots}
    movable = [r for r in running if r.moves_left > 0 and r.hours_left > 0]
    best: tuple[float, Trial] | None = None
    for i, job in enumerate(jobs):
        slot = at.get(job.key)
        if (slot is None and job.latest_start > 0) or (slot is not None and slot.start != 0):
            continue  # deferred, or unplaced but able to wait for the next plan
        now_cost = np.inf if slot is None else slot.cost + slot.charge
        ok = capacity + CAPACITY_EPS >= job.gpus
        if job.eligible is not None:
            ok &= job.eligible
        h = min(job.hours, horizon)
        for z in np.flatnonzero(ok).tolist():
            mine = cost(z, job.gpus, job.hours) + float(charge[i, z])
            if slot is not None and z == slot.site or now_cost - mine < min_saving:
                continue
            moved = _free(z, job.gpus, h, [r for r in movable if r.site == z], capacity, committed)
            if not moved:
                continue  # no running work to move, or room without moves: the plan's business
            trial = committed.copy()
            trial[z, :h] += job.gpus
            moves: list[tuple[RunningJob, int, float, float]] = []
            for r in moved:
                left = min(r.hours_left, horizon)
                trial[z, :left] -= r.gpus
                dest = _destination(r, z, left, cum, capacity, trial)
                if dest is None:
                    break
                trial[dest, :left] += r.gpus
                moves.append((r, dest, cost(z, r.gpus, r.hours_left), cost(dest, r.gpus, left)))
            if len(moves) != len(moved):
                continue
            before = now_cost + sum(m[2] for m in moves)
            gain = before - mine - sum(m[3] for m in moves)
            if gain < max(min_saving, threshold * before if np.isfinite(before) else 0.0):
                continue
            if best is None or gain > best[0]:
                own = float(charge[i, z])
                best = (gain, Trial(job, z, mine - own, own, trial, moves))
    return None if best is None else best[1]


def _free(
    site: int,
    gpus: float,
    hours: int,
    candidates: list[RunningJob],
    capacity: FloatArray,
    committed: FloatArray,
) -> list[RunningJob] | None:
    """Return the fewest running jobs on `site` whose moving frees `gpus` for `hours`.

    [] when the site has the room already; None when moving all of them is not enough.
    Candidates are taken cheapest to move first (GPU-hours left), then any no longer needed is
    dropped, largest first.
    """
    deficit = gpus - (capacity[site] - committed[site, :hours])
    if deficit.max(initial=0.0) <= CAPACITY_EPS:
        return []

    def covers(jobs: list[RunningJob]) -> bool:
        freed = np.zeros(hours)
        for r in jobs:
            freed[: min(r.hours_left, hours)] += r.gpus
        return bool(np.all(freed + CAPACITY_EPS >= deficit))

    chosen: list[RunningJob] = []
    for r in sorted(candidates, key=lambda r: (r.gpus * r.hours_left, r.key)):
        chosen.append(r)
        if covers(chosen):
            break
    else:
        return None
    for r in sorted(chosen, key=lambda r: (-r.gpus * r.hours_left, r.key)):
        rest = [c for c in chosen if c is not r]
        if covers(rest):
            chosen = rest
    return chosen


def _destination(
    job: RunningJob,
    site: int,
    hours: int,
    cum: FloatArray,
    capacity: FloatArray,
    committed: FloatArray,
) -> int | None:
    """Return the cheapest other site with room for `job`'s next `hours`, or None."""
    ok = capacity > 0 if job.eligible is None else job.eligible & (capacity > 0)
    ok = ok & (capacity[:, None] - committed[:, :hours] + CAPACITY_EPS >= job.gpus).all(axis=1)
    ok[site] = False
    if not ok.any():
        return None
    window = (cum[:, hours] - cum[:, 0]) * job.gpus
    return int(np.argmin(np.where(ok, window, np.inf)))
