from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from store import incident_repo as irepo
from store.db import make_session_factory
from store.incident_models import INCIDENT_STATES, INCIDENT_TRANSITIONS
from store.migrate import current_tables

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_migration_creates_incident_tables(engine):
    assert {
        "incidents",
        "incident_transitions",
        "incident_reroutes",
        "grid_overrides",
        "alert_events",
    } <= current_tables(engine)


def _open(session, key="FR:carbon_spike"):
    return irepo.open_incident(
        session=session,
        zone="FR",
        trigger="carbon_spike",
        open_key=key,
        details={},
        reason="scan",
        now=NOW,
    )


def test_transitions_follow_the_table_and_are_stored_with_reason(session):
    inc = _open(session)
    assert irepo.record_transition(
        session=session, incident=inc, to_state="ANOMALY_DETECTED", reason="3x baseline", now=NOW
    )
    assert not irepo.record_transition(
        session=session, incident=inc, to_state="ANOMALY_DETECTED", reason="again", now=NOW
    )
    for illegal in ("MONITORING", "ADAPTING", "RESOLVED", "ESCALATED"):
        with pytest.raises(ValueError, match=f"from 'ANOMALY_DETECTED' to '{illegal}'"):
            irepo.record_transition(
                session=session, incident=inc, to_state=illegal, reason="x", now=NOW
            )
    for state in ("EVALUATING", "ADAPTING", "RESOLVED"):
        irepo.record_transition(
            session=session, incident=inc, to_state=state, reason=state, now=NOW
        )
    with pytest.raises(ValueError, match="legal next: none"):
        irepo.record_transition(
            session=session, incident=inc, to_state="MONITORING", reason="x", now=NOW
        )
    rows = irepo.list_transitions(session=session, incident_id=inc.id)
    assert [(r.from_state, r.to_state, r.reason) for r in rows] == [
        (None, "MONITORING", "scan"),
        ("MONITORING", "ANOMALY_DETECTED", "3x baseline"),
        ("ANOMALY_DETECTED", "EVALUATING", "EVALUATING"),
        ("EVALUATING", "ADAPTING", "ADAPTING"),
        ("ADAPTING", "RESOLVED", "RESOLVED"),
    ]
    # RESOLVED keeps the key: the episode lasts until a pass sees the anomaly absent.
    assert inc.open_key == "FR:carbon_spike" and inc.resolved_at == NOW


def test_escalated_keeps_its_key_and_reopens_as_a_new_attempt(session):
    inc = _open(session)
    for state in ("ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "ESCALATED"):
        irepo.record_transition(session=session, incident=inc, to_state=state, reason="r", now=NOW)
    assert inc.open_key == "FR:carbon_spike" and inc.resolved_at is None
    assert irepo.find_open_incident(session=session, open_key="FR:carbon_spike") is inc
    irepo.record_transition(
        session=session, incident=inc, to_state="MONITORING", reason="r", now=NOW
    )
    irepo.record_transition(session=session, incident=inc, to_state="RESOLVED", reason="r", now=NOW)
    rows = irepo.list_transitions(session=session, incident_id=inc.id)
    assert [(r.attempt, r.to_state) for r in rows][-3:] == [
        (0, "ESCALATED"),
        (1, "MONITORING"),
        (1, "RESOLVED"),
    ]
    assert inc.attempt == 1 and inc.open_key == "FR:carbon_spike"


def test_transition_table_is_closed_and_everything_ends_resolved():
    states = set(INCIDENT_STATES)
    assert set(INCIDENT_TRANSITIONS) == states
    assert all(targets <= states for targets in INCIDENT_TRANSITIONS.values())
    assert INCIDENT_TRANSITIONS["RESOLVED"] == frozenset()
    # From every state RESOLVED is reachable: no incident can be trapped forever.
    for start in states:
        seen, todo = {start}, [start]
        while todo:
            for nxt in INCIDENT_TRANSITIONS[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert "RESOLVED" in seen, start


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(targets=st.lists(st.sampled_from(INCIDENT_STATES), max_size=12))
def test_random_transition_requests_never_store_an_illegal_one(sqlite_engine, targets):
    with make_session_factory(sqlite_engine)() as session:
        inc = _open(session, key=None)
        for target in targets:
            before = inc.state
            try:
                moved = irepo.record_transition(
                    session=session, incident=inc, to_state=target, reason="r", now=NOW
                )
            except ValueError:
                assert target not in INCIDENT_TRANSITIONS[before] and inc.state == before
            else:
                assert moved == (target != before) and inc.state == target
        rows = irepo.list_transitions(session=session, incident_id=inc.id)
        assert rows[0].from_state is None and rows[0].to_state == "MONITORING"
        for row in rows[1:]:
            assert row.to_state in INCIDENT_TRANSITIONS[row.from_state]
        assert rows[-1].to_state == inc.state
        assert inc.attempt == sum(r.from_state == "ESCALATED" for r in rows)


def test_one_open_incident_per_anomaly_key(session):
    irepo.open_incident(
        session=session,
        zone="FR",
        trigger="carbon_spike",
        open_key="k",
        details={},
        reason="a",
        now=NOW,
    )
    with pytest.raises(IntegrityError):
        irepo.open_incident(
            session=session,
            zone="FR",
            trigger="carbon_spike",
            open_key="k",
            details={},
            reason="b",
            now=NOW,
        )


def test_claim_skips_held_incidents_until_the_lease_expires(session):
    inc = irepo.open_incident(
        session=session,
        zone="FR",
        trigger="carbon_spike",
        open_key="k",
        details={},
        reason="a",
        now=NOW,
    )
    lease = timedelta(minutes=5)
    assert irepo.claim_incident(session=session, worker_id="w1", now=NOW, lease=lease) is inc
    assert irepo.claim_incident(session=session, worker_id="w2", now=NOW, lease=lease) is None
    # Not even the same worker id takes a claim that is still within its lease.
    assert irepo.claim_incident(session=session, worker_id="w1", now=NOW, lease=lease) is None
    later = NOW + timedelta(minutes=6)
    assert irepo.claim_incident(session=session, worker_id="w2", now=later, lease=lease) is inc
    irepo.release_incident(session=session, incident_id=inc.id, worker_id="w2")
    assert inc.claimed_by is None


def test_a_stale_holder_can_neither_renew_nor_retake_a_claim_taken_over(session):
    inc = _open(session)
    lease = timedelta(minutes=2)
    assert irepo.claim_incident(session=session, worker_id="w1", now=NOW, lease=lease) is inc
    # w1 is slow but alive: renewing within or after its lease works while nobody took it.
    renewed = NOW + timedelta(minutes=3)
    assert irepo.renew_claim(
        session=session, incident_id=inc.id, worker_id="w1", now=renewed, lease=lease
    )
    session.expire(inc)
    assert inc.claimed_until == renewed + lease
    # Its lease runs out and w2 takes the incident over.
    later = renewed + lease + timedelta(seconds=1)
    assert irepo.claim_incident(session=session, worker_id="w2", now=later, lease=lease) is inc
    assert not irepo.renew_claim(
        session=session, incident_id=inc.id, worker_id="w1", now=later, lease=lease
    )
    assert irepo.claim_incident(session=session, worker_id="w1", now=later, lease=lease) is None
    irepo.release_incident(session=session, incident_id=inc.id, worker_id="w1")  # not w1's
    session.expire(inc)
    assert inc.claimed_by == "w2"


def test_an_episode_ends_only_for_resolved_incidents_whose_anomaly_is_gone(session):
    done, still = _open(session, key="FR:carbon_spike"), _open(session, key="PT:surplus")
    for inc in (done, still):
        for state in ("ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "RESOLVED"):
            irepo.record_transition(
                session=session, incident=inc, to_state=state, reason="", now=NOW
            )
    open_one = _open(session, key="NL:node_offline:nl-ams-h100")
    assert irepo.end_episodes(session=session, present=["PT:surplus"]) == ["FR:carbon_spike"]
    assert (done.open_key, still.open_key) == (None, "PT:surplus")
    assert open_one.open_key == "NL:node_offline:nl-ams-h100"  # its own run decides
    assert irepo.find_open_incident(session=session, open_key="FR:carbon_spike") is None
    assert irepo.find_open_incident(session=session, open_key="PT:surplus") is still


def test_claim_takes_open_incidents_before_escalated_ones(session):
    old = _open(session, key="NL:node_offline:nl-ams-h100")
    for state in ("ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "ESCALATED"):
        irepo.record_transition(session=session, incident=old, to_state=state, reason="r", now=NOW)
    new = _open(session, key="FR:carbon_spike")
    new.opened_at = NOW + timedelta(hours=1)
    lease = timedelta(minutes=5)
    assert irepo.claim_incident(session=session, worker_id="w", now=NOW, lease=lease) is new
    claimed = irepo.claim_incident(
        session=session, worker_id="w", now=NOW, lease=lease, exclude=[new.id]
    )
    assert claimed is old
    assert (
        irepo.claim_incident(
            session=session, worker_id="w", now=NOW, lease=lease, exclude=[new.id, old.id]
        )
        is None
    )
