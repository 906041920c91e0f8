"""One incident per anomaly episode, and one spoken alert per incident, at any hour of the day."""

import io
import shutil
import wave
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from agents.offline import OfflineChatModel
from evals.incident_replay import CurtailedGrid
from graphs.checkpoint import open_checkpointer
from graphs.context import Context
from graphs.incident_watch import run_once
from store.audio_models import AudioAlert
from store.db import make_engine, make_session_factory
from store.incident_models import AlertEvent, Incident
from store.migrate import upgrade
from store.models import Workload
from store.seed import seed_fleet
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.incidents.alerts import speak_new_alerts
from tools.incidents.detection import add_spike
from tools.integrations.incidentio import DemoAlerts

DAY = datetime(2026, 11, 26, tzinfo=UTC)
"""FR, DE, NL and IT see no spike and no curtailment of their own in the simulator that day
and the next, so every anomaly below is one the test injects."""


class SilentSpeech:
    """A speech engine that makes a short silent WAV (the alert text is what counts)."""

    name = "test"
    voice = "none"

    def __init__(self) -> None:
        self.spoken: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.spoken.append(text)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 80)
        return buf.getvalue()


@dataclass
class Store:
    sessions: object
    engine: object
    grid: CurtailedGrid
    speech: SilentSpeech
    data_dir: object

    def ctx(self, at: datetime) -> Context:
        return Context(
            model=OfflineChatModel(),
            sessions=self.sessions,
            grid=self.grid,
            clock=FixedClock(at),
            alerts=DemoAlerts(),
        )

    def pass_at(self, saver, at: datetime) -> list[dict]:
        """One watcher pass, then the console's spoken-alert step."""
        reports = run_once(self.ctx(at), saver)
        with self.sessions() as s:
            speak_new_alerts(session=s, engine=self.speech, data_dir=self.data_dir, now=at)
        return reports

    def incidents(self) -> list[tuple[str, str, str, str | None]]:
        with self.sessions() as s:
            rows = s.scalars(select(Incident).order_by(Incident.opened_at, Incident.id)).all()
            return [(i.trigger, i.zone, i.state, i.open_key) for i in rows]

    def spoken_per_incident(self) -> Counter:
        with self.sessions() as s:
            ids = [i.id for i in s.scalars(select(Incident))]
            refs = s.scalars(select(AudioAlert.ref).where(AudioAlert.kind == "incident")).all()
        return Counter({i: refs.count(i) for i in ids})


def _store(path, tmp_path) -> Store:
    engine = make_engine(f"sqlite:///{path}")
    return Store(
        make_session_factory(engine),
        engine,
        CurtailedGrid(SimulatedGrid(seed=7)),
        SilentSpeech(),
        tmp_path,
    )


def _route(sessions, grid, name, spec, first_zone, now) -> str:
    """Route a job into `first_zone`, then let it go to its spec's zones (as the router would)."""
    with sessions.begin() as s:
        wl = submit_workload(session=s, org_id="acme-ai", name=name, spec=spec, now=now)
        s.get(Workload, wl.id).allowed_zones = [first_zone]
    with sessions.begin() as s:
        route_workload(session=s, grid=grid, workload_id=wl.id, now=now)
        s.get(Workload, wl.id).allowed_zones = spec.allowed_zones
    return wl.id


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A migrated, seeded SQLite file that each scenario copies (migrating 24 times is slow)."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with make_session_factory(engine).begin() as s:
        seed_fleet(session=s, now=DAY)
    engine.dispose()
    return path


def _copy(template, tmp_path, name="store.db") -> Store:
    target = tmp_path / name
    shutil.copy(template, target)
    return _store(target, tmp_path)


def test_a_surplus_hour_is_one_incident_and_one_spoken_alert(template, tmp_path):
    """The reported case: PT curtails for an hour and routed H100 work may go there but cannot."""
    store = _copy(template, tmp_path)
    hours = (DAY + timedelta(hours=h) for h in range(24 * 60))
    start = next(  # the simulator's own surplus hour in PT, with none in DE and none after it
        t
        for t in hours
        if store.grid.reading("PT", t).curtailment
        and not store.grid.reading("PT", t + timedelta(hours=1)).curtailment
        and not store.grid.reading("DE", t).curtailment
    )
    spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=6, allowed_zones=["DE", "PT"])
    _route(store.sessions, store.grid, "pt-flex", spec, "DE", start)
    assert store.grid.reading("PT", start).curtailment  # the simulator's own surplus hour
    with open_checkpointer(store.engine) as saver:
        reports = [store.pass_at(saver, start + timedelta(minutes=m)) for m in range(21)]
        assert [len(r) for r in reports] == [1] + [0] * 20
        (first,) = reports[0]
        assert first["trigger"] == "surplus" and first["state"] == "RESOLVED"
        assert [m["outcome"] for m in first["reroutes"]] == ["kept"]  # no H100 in Lisbon
        # 21 passes in one surplus hour: one incident, holding its key until PT stops curtailing.
        assert store.incidents() == [("surplus", "PT", "RESOLVED", "PT:surplus")]
        assert list(store.spoken_per_incident().values()) == [1]
        assert store.pass_at(saver, start + timedelta(hours=1)) == []  # an hour on: none
    assert store.incidents() == [("surplus", "PT", "RESOLVED", None)]
    with store.sessions() as s:
        alerts = s.scalars(select(AlertEvent.status).order_by(AlertEvent.id)).all()
    assert alerts == ["firing", "resolved"]
    assert len(store.speech.spoken) == 1
    store.engine.dispose()


def test_a_kept_spike_stays_one_incident_until_it_ends(template, tmp_path):
    store = _copy(template, tmp_path)
    start = DAY.replace(hour=10)
    spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=8, allowed_zones=["FR", "NL"])
    _route(store.sessions, store.grid, "fr-job", spec, "FR", start)
    with store.sessions.begin() as s:  # 3x: over the threshold, yet NL is not 25 % better
        add_spike(
            session=s, zone="FR", carbon_factor=3, price_factor=1, hours=2, reason="t", now=start
        )
    with open_checkpointer(store.engine) as saver:
        (r,) = store.pass_at(saver, start)
        assert [m["outcome"] for m in r["reroutes"]] == ["kept"] and r["state"] == "RESOLVED"
        for minutes in range(15, 120, 15):  # the spike holds: same episode, nothing new
            assert store.pass_at(saver, start + timedelta(minutes=minutes)) == []
        assert store.incidents() == [("carbon_spike", "FR", "RESOLVED", "FR:carbon_spike")]
        assert store.pass_at(saver, start + timedelta(hours=2)) == []  # over: episode ends
        assert store.incidents() == [("carbon_spike", "FR", "RESOLVED", None)]
        with store.sessions.begin() as s:  # a new spike later is a new episode
            later = start + timedelta(hours=3)
            add_spike(
                session=s,
                zone="FR",
                carbon_factor=3,
                price_factor=1,
                hours=1,
                reason="t",
                now=later,
            )
        (again,) = store.pass_at(saver, start + timedelta(hours=3))
    assert again["id"] != r["id"]
    assert [i[:2] for i in store.incidents()] == [("carbon_spike", "FR")] * 2
    assert list(store.spoken_per_incident().values()) == [1, 1]
    store.engine.dispose()


PASSES = (0, 10, 30, 50, 70, 90)
"""Minutes after the start at which the watcher runs: inside both episodes, then after them."""


def _day_at(template, tmp_path, hour: int) -> dict:
    """Run one spike episode and two surplus episodes starting at `hour`; return the counts."""
    store = _copy(template, tmp_path, f"store-{hour:02d}.db")
    start = DAY + timedelta(hours=hour)
    spiked = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=6, allowed_zones=["FR", "DE"])
    _route(store.sessions, store.grid, "fr-job", spiked, "FR", start)
    flexible = JobSpec(
        gpu_count=1, gpu_model="RTX4090", duration_hours=6, allowed_zones=["IT", "NL"]
    )
    _route(store.sessions, store.grid, "it-job", flexible, "IT", start)
    with store.sessions.begin() as s:
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=1, reason="t", now=start
        )
    store.grid.curtail("NL", start, 1, 0.3)  # NL surplus; no 4090 there, so the job stays
    store.grid.curtail("NL", start + timedelta(hours=2), 1, 0.3)  # a second episode
    moved = []
    with open_checkpointer(store.engine) as saver:
        for minutes in (*PASSES, 120, 140):
            moved += store.pass_at(saver, start + timedelta(minutes=minutes))
        held = [key for *_, key in store.incidents() if key]
    out = {
        "incidents": Counter((t, z, s) for t, z, s, _ in store.incidents()),
        "reports": len(moved),
        "spoken": sorted(store.spoken_per_incident().values()),
        "held_keys": held,
    }
    store.engine.dispose()
    return out


@pytest.mark.slow
def test_the_incident_expectations_hold_whatever_the_hour(template, tmp_path):
    results = {hour: _day_at(template, tmp_path, hour) for hour in range(24)}
    expected = {
        "incidents": Counter(
            {("carbon_spike", "FR", "RESOLVED"): 1, ("surplus", "NL", "RESOLVED"): 2}
        ),
        "reports": 3,  # each incident reported once, when it ran
        "spoken": [1, 1, 1],
        "held_keys": ["NL:surplus"],  # the second surplus episode still lasts at +140 min
    }
    wrong = {hour: r for hour, r in results.items() if r != expected}
    assert not wrong, wrong
