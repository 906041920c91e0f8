from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from store import incident_repo as irepo
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


def test_transitions_move_forward_and_are_stored_with_reason(session):
    inc = irepo.open_incident(
        session=session,
        zone="FR",
        trigger="carbon_spike",
        open_key="FR:carbon_spike",
        details={},
        reason="scan",
        now=NOW,
    )
    assert irepo.record_transition(
        session=session, incident=inc, to_state="ANOMALY_DETECTED", reason="3x baseline", now=NOW
    )
    assert not irepo.record_transition(
        session=session, incident=inc, to_state="MONITORING", reason="again", now=NOW
    )
    with pytest.raises(ValueError, match="cannot go from 'ANOMALY_DETECTED' to 'ADAPTING'"):
        irepo.record_transition(
            session=session, incident=inc, to_state="ADAPTING", reason="x", now=NOW
        )
    assert irepo.record_transition(
        session=session, incident=inc, to_state="RESOLVED", reason="cleared", now=NOW
    )
    rows = irepo.list_transitions(session=session, incident_id=inc.id)
    assert [(r.from_state, r.to_state, r.reason) for r in rows] == [
        (None, "MONITORING", "scan"),
        ("MONITORING", "ANOMALY_DETECTED", "3x baseline"),
        ("ANOMALY_DETECTED", "RESOLVED", "cleared"),
    ]
    assert inc.open_key is None and inc.resolved_at == NOW


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
    later = NOW + timedelta(minutes=6)
    assert irepo.claim_incident(session=session, worker_id="w2", now=later, lease=lease) is inc
    irepo.release_incident(session=session, incident_id=inc.id, worker_id="w2")
    assert inc.claimed_by is None
