"""Replay policies: carbon-agnostic baseline, greedy (price, carbon, composite) and forecast-aware.

* `baseline`: carbon-agnostic; start at arrival in the origin zone, FIFO when it is full.
* `price_only` / `carbon_only`: start at arrival in the zone with free GPUs and the lowest current
  energy cost rate (`kW/GPU x price`) / emission rate (`kW/GPU x CI`).
* `composite`: the broker's rule: start at arrival in the free zone with the lowest score
  `0.6*CI/500 + 0.3*price/100 + 0.1*util`; a job that had to wait (no free GPUs anywhere) is
  routed to its best zone and moves only when a free zone scores >= 25 % lower, at most 5 times.
* `spatiotemporal`: every hour re-plans each waiting job over zones and start hours within its
  slack, minimising forecast `kW/GPU x score` summed over the job's hours, with GPUs booked by
  running jobs and by the plans of jobs placed before it; starts jobs whose best slot is now.
  Order (regret first, as in Vogel's method for assignment problems): jobs that must start now,
  then the rest; within each group by regret, the GPUs x (second-best minus best zone's window
  cost), so the job that loses most when pushed out of the best zone picks first. With
  carbon-only weights (the default) the objective is forecast kg CO2.
* `ScheduledPolicy`: replays a precomputed schedule (the oracle's) through the same harness.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

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
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CARBON_ONLY = ScoreWeights(carbon=1.0, price=0.0, utilization=0.0)
PRICE_ONLY = ScoreWeights(carbon=0.0, price=1.0, utilization=0.0)


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


class SpatioTemporalPolicy:
    """Defer within slack to the best forecast (zone, start) window, capacity-aware."""

    def __init__(
        self,
        *,
        weights: ScoreWeights = CARBON_ONLY,
        causal: bool = True,
        name: str = "spatiotemporal",
    ) -> None:
        self.name = name
        self.weights = weights
        self.causal = causal

    def _objective(self, state: HourState, view: GridView, horizon: int) -> FloatArray:
        ci = view.outlook("ci", horizon)
        price = view.outlook("price", horizon) if self.weights.price > 0 else np.zeros_like(ci)
        util = np.zeros_like(ci)
        return score_matrix(ci, price, util, self.weights) * state.fleet.kw_per_gpu[:, None]

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Plan all waiting jobs; start the ones whose best slot is this hour."""
        order = urgency_order(state)
        if order.size == 0:
            return Decision()
        jobs, fleet = state.jobs, state.fleet
        slack_left = np.maximum(jobs.latest_start[order] - state.now, 0)
        horizon = int((slack_left + jobs.duration[order]).max())
        obj = self._objective(state, view, horizon)
        cum = np.concatenate([np.zeros((obj.shape[0], 1)), np.cumsum(obj, axis=1)], axis=1)
        booked = np.array(state.committed[:, : horizon + 1], dtype=np.float64, copy=True)
        if booked.shape[1] < horizon + 1:
            pad = np.zeros((booked.shape[0], horizon + 1 - booked.shape[1]))
            booked = np.concatenate([booked, pad], axis=1)
        room = np.where(fleet.capacity > 0, fleet.capacity, -1.0)[:, None] + CAPACITY_EPS
        usable = fleet.capacity > 0
        regret = np.zeros(order.size)
        for i, (j, left) in enumerate(zip(order, slack_left, strict=True)):
            n_start, length = int(left) + 1, int(jobs.duration[j])
            per_zone = (cum[:, length : length + n_start] - cum[:, :n_start]).min(axis=1)
            best_two = np.sort(per_zone[usable])[:2]
            regret[i] = (best_two[-1] - best_two[0]) * jobs.gpus[j]
        pick = np.lexsort((-regret, slack_left > 0))
        order, slack_left = order[pick], slack_left[pick]
        decision = Decision()
        for j, left in zip(order, slack_left, strict=True):
            n_start, length, g = int(left) + 1, int(jobs.duration[j]), jobs.gpus[j]
            sums = cum[:, length : length + n_start] - cum[:, :n_start]
            span = booked[:, : n_start + length - 1]
            peak = span if length == 1 else sliding_window_view(span, length, axis=1).max(axis=2)
            feasible = peak + g <= room
            if not feasible.any():
                continue
            masked = np.where(feasible, sums, np.inf)
            k, z = divmod(int(np.argmin(masked.T.ravel())), masked.shape[0])
            booked[z, k : k + length] += g
            if k == 0:
                decision.starts.append((int(j), z))
        return decision


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
