"""Causality is enforced: a policy can reach neither later grid hours nor jobs not yet arrived."""

from __future__ import annotations

import gc
import sys
import types
from datetime import UTC, datetime

import numpy as np
import pytest

from evals.gridwindow import GridWindow
from evals.harness import simulate
from evals.policy_base import Decision, HourState
from evals.view import FutureDataError, GridFeed, GridView
from tests.evals_helpers import make_fleet, make_jobs

FUTURE_CI = 4321.0
FUTURE_GPUS = 0.321
REVEAL_HOUR = 10
"""Grid hours from this one on carry the sentinel; decisions are checked before it."""


def _window(hours: int = 60, history: int = 48) -> GridWindow:
    ci = np.full((2, history + hours), 100.0)
    ci[1] = 200.0
    ci[:, history + REVEAL_HOUR :] = FUTURE_CI
    price = np.full_like(ci, 50.0)
    price[:, history + REVEAL_HOUR :] = FUTURE_CI
    return GridWindow(
        zones=("Z0", "Z1"),
        start=datetime(2023, 6, 1, tzinfo=UTC),
        history=history,
        horizon=hours,
        ci=ci,
        price=price,
        price_cost=price.copy(),
    )


def _jobs():
    # Jobs 0-2 arrive before the checks end; jobs 3-4 arrive later and carry the GPU sentinel.
    return make_jobs(
        arrival=[0, 2, 4, 20, 21],
        duration=[1, 2, 1, 1, 1],
        gpus=[1.0, 1.0, 1.0, FUTURE_GPUS, FUTURE_GPUS],
        slack=[3, 3, 3, 0, 0],
        origin=[0, 1, 0, 1, 0],
    )


def _reachable_arrays(*roots: object) -> list[np.ndarray]:
    """Every ndarray reachable from `roots` by any reference (attributes, slots, closures,
    bound methods, containers, array bases), except through modules and foreign classes."""
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen: set[int] = set()
    stack = list(roots)
    arrays = []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or id(obj) in module_dicts or isinstance(obj, types.ModuleType):
            continue
        seen.add(id(obj))
        if isinstance(obj, type) and not obj.__module__.startswith(("evals", "tools")):
            continue
        if isinstance(obj, np.ndarray):
            arrays.append(obj)
            if obj.base is not None:
                stack.append(obj.base)
            continue
        stack.extend(gc.get_referents(obj))
    return arrays


class Snooper:
    """Collects, before hour `REVEAL_HOUR`, every array it can reach from its inputs."""

    name = "snooper"
    causal = True

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.checked = 0
        self.arrived: list[tuple[int, int]] = []

    def decide(self, state: HourState, view: GridView) -> Decision:
        self.arrived.append((state.now, len(state.jobs)))
        if state.now < REVEAL_HOUR:
            self.checked += 1
            view.outlook("ci", 24)  # forecasts are allowed; they must not leak the sentinel
            for a in _reachable_arrays(state, view):
                if a.dtype.kind == "f" and np.isin(a, [FUTURE_CI, FUTURE_GPUS]).any():
                    self.leaks.append(f"hour {state.now}: array {a.shape} holds a future value")
        return Decision(starts=[(int(j), int(state.jobs.origin[j])) for j in state.pending])


@pytest.mark.parametrize("mode", ["naive", "model"])
def test_no_future_value_is_reachable_from_what_a_causal_policy_gets(mode: str) -> None:
    snooper = Snooper()
    run = simulate(
        snooper,
        jobs=_jobs(),
        fleet=make_fleet([2.0, 2.0]),
        window=_window(),
        forecast=mode,
        decide_hours=30,
    )
    assert snooper.checked >= 3
    assert snooper.leaks == []
    assert run.causal is True and run.foresight is None
    # Each hour the policy saw exactly the jobs that had arrived by then.
    arrival = _jobs().arrival
    assert all(count == int((arrival <= now).sum()) for now, count in snooper.arrived)


def test_the_walk_finds_the_future_when_it_is_there() -> None:
    # Perfect forecasts hand the view the recorded future: the same walk must see the sentinel,
    # and the harness labels the run not causal although the policy declares itself causal.
    snooper = Snooper()
    run = simulate(
        snooper,
        jobs=_jobs(),
        fleet=make_fleet([2.0, 2.0]),
        window=_window(),
        forecast="perfect",
        decide_hours=30,
    )
    assert snooper.leaks
    assert run.causal is False
    assert run.foresight == "perfect forecasts (the recorded future)"


class Cheater:
    name = "cheater"
    causal = True

    def __init__(self) -> None:
        self.errors: list[str] = []

    def decide(self, state: HourState, view: GridView) -> Decision:
        attempts = {
            "later job": lambda: state.jobs.arrival[len(state.jobs)],
            "routed of a later job": lambda: state.routed[len(state.jobs)],
            "window": lambda: view._window,  # type: ignore[attr-defined]
            "feed": lambda: view._feed,  # type: ignore[attr-defined]
            "next hour": lambda: view.actual("ci", state.now + 1),
            "raw next hour": lambda: view._data["ci"][:, view._history + state.now + 1],
            "write the schedule": lambda: state.committed.__setitem__((0, 0), 99.0),
            "write the jobs": lambda: state.jobs.gpus.__setitem__(0, 99.0),
        }
        for label, attempt in attempts.items():
            try:
                value = attempt()
            except (IndexError, AttributeError, FutureDataError, ValueError) as exc:
                self.errors.append(f"{label}: {type(exc).__name__}")
            else:
                unknown = np.all(np.isnan(np.asarray(value, dtype=float)))
                self.errors.append(f"{label}: {'nan' if unknown else f'READ {value!r}'}")
        return Decision()


def test_every_way_to_the_future_raises_or_is_empty() -> None:
    cheater = Cheater()
    simulate(
        cheater,
        jobs=make_jobs([0, 30], [1, 1], [1, 1], [0, 0], [0, 0]),
        fleet=make_fleet([2.0, 2.0]),
        window=_window(),
        forecast="naive",
        decide_hours=1,
    )
    assert cheater.errors == [
        "later job: IndexError",
        "routed of a later job: IndexError",
        "window: AttributeError",
        "feed: AttributeError",
        "next hour: FutureDataError",
        "raw next hour: nan",  # the view's own arrays hold nothing after now
        "write the schedule: ValueError",
        "write the jobs: ValueError",
    ]


def test_the_feed_reveals_hours_in_order_only() -> None:
    feed = GridFeed(_window(), "naive")
    view = feed.advance_to(3)
    assert view.actual("ci", 3).tolist() == [100.0, 200.0]
    with pytest.raises(FutureDataError, match="hour 4 at hour 3"):
        view.actual("ci", 4)
    with pytest.raises(ValueError, match="cannot go back"):
        feed.advance_to(2)
    assert not hasattr(view, "advance_to")
