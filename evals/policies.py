"""Replay policies: carbon-agnostic baseline, greedy (price, carbon, composite) and the broker.

* `baseline`: carbon-agnostic; start at arrival in the origin zone, FIFO when it is full.
* `price_only` / `carbon_only`: start at arrival in the zone with free GPUs and the lowest current
  energy cost rate (`kW/GPU x price`) / emission rate (`kW/GPU x CI`).
* `composite`: the broker's rule: start at arrival in the free zone with the lowest score
  `0.6*CI/500 + 0.3*price/100 + 0.1*util`; a job that had to wait (no free GPUs anywhere) is
  routed to its best zone and moves only when a free zone scores >= 25 % lower, at most 5 times.
* `broker`: the product's planner (`tools.broker.planner.plan_hour`, the function route and the
  background loop call): every hour all waiting jobs are re-planned jointly over (zone, start
  hour) within their deadlines on the view's forecasts, against the GPUs running jobs hold (the
  joint LP/MILP with HiGHS, greedy as fallback); jobs planned for this hour start. Running jobs
  move when that lets work the plan starts now start on a cleaner zone (`tools.broker.make_room`).
  Objective: forecast kg CO2 (default) or the composite score x kW.
* `ScheduledPolicy`: replays a precomputed schedule (the oracle's) through the same harness.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from evals.policy_base import (
    CAPACITY_EPS,
    MAX_REROUTES,
    REROUTE_MIN_IMPROVEMENT,
    Decision,
    HourState,
    score_matrix,
    urgency_order,
)
from evals.view import GridView
from tools.broker.blocking import ARRIVAL_SPAN_H, history_of, large_job_headroom
from tools.broker.planner import (
    Objective,
    PlanGrid,
    PlanJob,
    RunningJob,
    plan_hour,
)
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CARBON_ONLY = ScoreWeights(carbon=1.0, price=0.0, utilization=0.0)
PRICE_ONLY = ScoreWeights(carbon=0.0, price=1.0, utilization=0.0)
REPLAY_BUDGET_S = 20.0
"""Wall-time budget of each hourly plan in the replays: a safety net, far above what a replay's
plans take, so that HiGHS's deterministic limits (not the machine's load) end each solve and a
replay is reproducible."""
PLAN_MIN_HORIZON = 48


class BaselinePolicy:
    """Carbon-agnostic: run at arrival in the origin zone."""

    name = "baseline"
    causal = True

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Start every waiting job in its origin zone, oldest first."""
        origin = state.jobs.origin
        return Decision(starts=[(int(j), int(origin[j])) for j in state.pending])


class GreedyPolicy:
    """Start now in the free zone with the best current key; optional 25 % / 5 reroute rule."""

    causal = True

    def __init__(
        self, name: str, weights: ScoreWeights, *, per_gpu_energy: bool, reroute: bool
    ) -> None:
        self.name = name
        self.weights = weights
        self.per_gpu_energy = per_gpu_energy
        """Multiply the key by kW/GPU (rates per GPU-hour) instead of the raw score."""
        self.reroute = reroute

    def _keys(
        self, ci: FloatArray, price: FloatArray, util: FloatArray, kw: FloatArray
    ) -> FloatArray:
        keys = score_matrix(ci[:, None], price[:, None], util[:, None], self.weights)[:, 0]
        return keys * kw if self.per_gpu_energy else keys

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Place waiting jobs most-urgent first; queue (route) those that fit nowhere."""
        fleet, jobs = state.fleet, state.jobs
        ci, price = view.actual("ci", state.now), view.actual("price", state.now)
        usable = fleet.capacity > 0
        free = state.free.copy()
        decision = Decision()
        for j in urgency_order(state):
            g = jobs.gpus[j]
            util = np.clip(1.0 - free / np.where(usable, fleet.capacity, 1.0), 0.0, 1.0)
            keys = self._keys(ci, price, util, fleet.kw_per_gpu)
            fits = usable & (free + CAPACITY_EPS >= g)
            current = int(state.routed[j])
            if current >= 0:
                target = self._from_queue(j, current, keys, fits, state)
                if target is not None:
                    decision.starts.append((int(j), target))
                    free[target] -= g
                continue
            if fits.any():
                z = int(np.argmin(np.where(fits, keys, np.inf)))
                decision.starts.append((int(j), z))
                free[z] -= g
            else:
                decision.routes.append((int(j), int(np.argmin(np.where(usable, keys, np.inf)))))
        return decision

    def _from_queue(
        self, j: int, current: int, keys: FloatArray, fits: npt.NDArray[np.bool_], state: HourState
    ) -> int | None:
        if fits[current]:
            return current
        if not self.reroute or state.reroutes[j] >= MAX_REROUTES or not fits.any():
            return None
        best = int(np.argmin(np.where(fits, keys, np.inf)))
        old = keys[current]
        if old > 0 and (old - keys[best]) / old >= REROUTE_MIN_IMPROVEMENT:
            return best
        return None


def price_only_policy() -> GreedyPolicy:
    """Return the greedy policy on energy cost rate (kW/GPU x price)."""
    return GreedyPolicy("price_only", PRICE_ONLY, per_gpu_energy=True, reroute=False)


def carbon_only_policy() -> GreedyPolicy:
    """Return the greedy policy on emission rate (kW/GPU x CI)."""
    return GreedyPolicy("carbon_only", CARBON_ONLY, per_gpu_energy=True, reroute=False)


def composite_policy(weights: ScoreWeights = DEFAULT_WEIGHTS) -> GreedyPolicy:
    """Return the broker's composite greedy with the 25 % / 5 reroute rule."""
    return GreedyPolicy("composite", weights, per_gpu_energy=False, reroute=True)


class BrokerPolicy:
    """The product's planner hour by hour: `tools.broker.planner.plan_hour` on the forecasts.

    Every hour all waiting jobs are re-planned jointly over (zone, start) within their deadlines,
    against the GPUs running jobs hold; the jobs planned for offset 0 start. A job deferred by
    the last plan passes its slot as `PlanJob.planned`, so new arrivals never take it. With
    `headroom_premium` > 0, sites that can hold a whole 8-GPU job keep that much headroom at that
    premium (see `plan_hour`); off by default, as it raised CO2 on 2021 weeks.

    The plan prices the risk of blocking a large job (`tools.broker.blocking`) from the large
    jobs that arrived in the last week: the `prior` ones (the week before the window, which the
    product would have in its store) and the ones that arrived in the replay so far.
    """

    def __init__(
        self,
        *,
        objective: Objective = "carbon",
        weights: ScoreWeights = CARBON_ONLY,
        causal: bool = True,
        name: str = "broker",
        time_budget_s: float = REPLAY_BUDGET_S,
        headroom_premium: float = 0.0,
        prior: Sequence[tuple[float, float, int, int]] = (),
    ) -> None:
        self.name = name
        self.prior = list(prior)
        """(arrival hour < 0, GPUs, hours, slack hours) of jobs seen before the window."""
        self.objective: Objective = objective
        self.weights = weights
        self.causal = causal
        self.time_budget_s = time_budget_s
        self.headroom_premium = headroom_premium
        self.methods: dict[str, int] = {}
        """How often each plan method was used (lp, lp-rounded, greedy, kept)."""
        self._planned: dict[int, tuple[int, int]] = {}
        """Job -> (zone, replay hour) of the last plan's slot for each deferred job."""

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Plan all waiting jobs; start the ones planned for this hour, most urgent first."""
        order = urgency_order(state)
        if order.size == 0:
            return Decision()
        jobs, fleet, now = state.jobs, state.fleet, state.now
        slack_left = np.maximum(jobs.latest_start[order] - now, 0)
        horizon = max(int((slack_left + jobs.duration[order]).max()), PLAN_MIN_HORIZON)
        ci = view.outlook("ci", horizon - 1)
        price = (
            view.outlook("price", horizon - 1)
            if self.objective == "composite" and self.weights.price > 0
            else np.zeros_like(ci)
        )
        committed = np.zeros((len(fleet.zones), horizon))
        have = state.committed[:, :horizon]
        committed[:, : have.shape[1]] = have
        grid = PlanGrid(ci, price, fleet.capacity, committed, fleet.kw_per_gpu)
        plan_jobs = [
            PlanJob(
                str(int(j)),
                float(jobs.gpus[j]),
                int(jobs.duration[j]),
                int(left),
                planned=self._slot(int(j), now),
            )
            for j, left in zip(order, slack_left, strict=True)
        ]
        arrived = self.prior + [
            (float(a), float(g), int(d), int(s))
            for a, g, d, s in zip(jobs.arrival, jobs.gpus, jobs.duration, jobs.slack, strict=True)
        ]
        seen_h = now + 1 + (ARRIVAL_SPAN_H if self.prior else 0)
        result = plan_hour(
            plan_jobs,
            grid,
            objective=self.objective,
            weights=self.weights,
            time_budget_s=self.time_budget_s,
            headroom=large_job_headroom(fleet.capacity),
            headroom_premium=self.headroom_premium,
            arrivals=history_of(arrived, now=now, observed_h=seen_h),
            running=_running(state),
        )
        self.methods[result.method] = self.methods.get(result.method, 0) + 1
        now_slots = {int(s.key): s.site for s in result.slots if s.start == 0}
        self._planned = {int(s.key): (s.site, now + s.start) for s in result.slots if s.start > 0}
        return Decision(
            starts=[(int(j), now_slots[int(j)]) for j in order if j in now_slots],
            moves=[(int(m.key), m.to_site) for m in result.moves],
        )

    def _slot(self, j: int, now: int) -> tuple[int, int] | None:
        """Return the (zone, offset) the last plan deferred job `j` to, if it had one."""
        slot = self._planned.get(j)
        return None if slot is None else (slot[0], slot[1] - now)


def _running(state: HourState) -> list[RunningJob]:
    """Return the jobs running at `state.now`, in their zones, with the moves they have left."""
    jobs, start = state.jobs, state.start
    left = start + jobs.duration - state.now
    return [
        RunningJob(
            str(int(j)),
            int(state.routed[j]),
            float(jobs.gpus[j]),
            int(left[j]),
            MAX_REROUTES - int(state.reroutes[j]),
        )
        for j in np.flatnonzero((start >= 0) & (left > 0))
    ]


class ScheduledPolicy:
    """Replay a fixed (start hour, zone) schedule; late jobs take the lowest-CO2 free zone."""

    causal = False

    def __init__(self, name: str, start: IntArray, zone: IntArray) -> None:
        self.name = name
        self._start = start
        self._zone = zone

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Start jobs scheduled for this hour (and overdue ones wherever GPUs are free)."""
        decision = Decision()
        due = state.pending[self._start[state.pending] <= state.now]
        free = state.free.copy()
        rate = view.actual("ci", state.now) * state.fleet.kw_per_gpu
        for j in due[np.argsort(self._start[due], kind="stable")]:
            z, g = int(self._zone[j]), state.jobs.gpus[j]
            if self._start[j] < state.now or free[z] + CAPACITY_EPS < g:
                fits = (state.fleet.capacity > 0) & (free + CAPACITY_EPS >= g)
                if not fits.any():
                    continue
                z = int(np.argmin(np.where(fits, rate, np.inf)))
            decision.starts.append((int(j), z))
            free[z] -= g
        return decision
