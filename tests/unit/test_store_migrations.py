from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from store.migrate import current_tables
from store.models import GridState

TABLES = {
    "organizations",
    "compute_nodes",
    "workloads",
    "grid_states",
    "transactions",
    "routing_decisions",
    "carbon_receipts",
    "curtailment_events",
}


def test_migrations_create_the_domain_tables(engine):
    assert TABLES <= current_tables(engine)


def test_timestamps_round_trip_as_aware_utc(session):
    ts = datetime(2023, 6, 1, 12, tzinfo=UTC)
    session.add(GridState(zone="FR", ts=ts, source="sim", carbon_intensity=50.0, recorded_at=ts))
    session.commit()
    session.expunge_all()
    got = session.scalars(select(GridState)).one()
    assert got.ts == ts and got.ts.tzinfo is not None


def test_naive_timestamps_are_refused(session):
    session.add(
        GridState(
            zone="FR",
            ts=datetime(2023, 6, 1),
            source="sim",
            recorded_at=datetime(2023, 6, 1, tzinfo=UTC),
        )
    )
    with pytest.raises(Exception, match="naive datetime"):
        session.commit()


def test_gpu_allocation_migration_backfills_and_refuses_oversubscribed_data(tmp_path):
    from sqlalchemy import text

    from store.db import make_engine
    from store.migrate import upgrade

    def at_0006(name):
        engine = make_engine(f"sqlite:///{tmp_path / name}")
        upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO organizations (id, name, kind, country, created_at) "
                "VALUES ('acme', 'Acme', 'enterprise', 'DE', '2023-06-01 00:00:00')"
            )
            conn.exec_driver_sql(
                "INSERT INTO compute_nodes (id, name, owner_id, kind, zone, gpu_model, gpu_count, "
                "reserved_gpus, power_kw_per_gpu, price_per_gpu_hour_minor, currency, status, "
                "created_at) VALUES ('be-bru-l40s', 'Brussels', 'acme', 'datacenter', 'BE', "
                "'L40S', 8, 0, 0.35, 110, 'EUR', 'online', '2023-06-01 00:00:00')"
            )
        return engine

    def add_routed(engine, wid, gpus):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workloads (id, org_id, name, gpu_count, duration_hours, status, "
                    "node_id, reroute_count, submitted_at, updated_at) VALUES (:id, 'acme', :id, "
                    ":g, 1.0, 'routed', 'be-bru-l40s', 0, '2023-06-01 00:00:00', "
                    "'2023-06-01 00:00:00')"
                ),
                {"id": wid, "g": gpus},
            )

    ok = at_0006("ok.db")
    add_routed(ok, "w1", 3)
    add_routed(ok, "w2", 2)
    upgrade(ok)
    with ok.connect() as conn:
        held = conn.exec_driver_sql(
            "SELECT allocated_gpus FROM compute_nodes WHERE id = 'be-bru-l40s'"
        ).scalar_one()
    assert held == 5

    bad = at_0006("bad.db")
    add_routed(bad, "w1", 8)
    add_routed(bad, "w2", 8)
    with pytest.raises(RuntimeError, match="be-bru-l40s holds 16 of 8 GPUs"):
        upgrade(bad)


def test_the_head_revision_read_from_file_names_is_alembics_head(tmp_path):
    from alembic.script import ScriptDirectory

    from store.db import make_engine
    from store.migrate import alembic_config, head_revision, upgrade

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [head_revision()]
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    upgrade(engine, "0006")
    upgrade(engine)  # not at head: migrates all the way
    with engine.connect() as conn:
        stamped = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    assert stamped == head_revision()


def _insert_workload(conn, wid, status):
    from sqlalchemy import text

    conn.execute(
        text(
            "INSERT INTO workloads (id, org_id, name, gpu_count, duration_hours, status, "
            "reroute_count, submitted_at, updated_at) VALUES (:id, 'acme', :id, 1, 1.0, :s, 0, "
            "'2023-06-01 00:00:00', '2023-06-01 00:00:00')"
        ),
        {"id": wid, "s": status},
    )


def test_scheduled_is_a_workload_status_and_others_are_still_refused(engine):
    from sqlalchemy.exc import IntegrityError

    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO organizations (id, name, kind, created_at) "
            "VALUES ('acme', 'Acme', 'enterprise', '2023-06-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO compute_nodes (id, name, owner_id, kind, zone, gpu_model, gpu_count, "
            "reserved_gpus, power_kw_per_gpu, price_per_gpu_hour_minor, currency, status, "
            "created_at) VALUES ('n1', 'n1', 'acme', 'datacenter', 'BE', 'L40S', 8, 0, 0.35, "
            "110, 'EUR', 'online', '2023-06-01 00:00:00')"
        )
        _insert_workload(conn, "w1", "scheduled")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _insert_workload(conn, "w2", "someday")
    reserve = (
        "INSERT INTO gpu_reservations (workload_id, node_id, gpus, start_at, end_at, created_at) "
        "VALUES ('w1', 'n1', {gpus}, '2023-06-01 01:00:00', '{end}', '2023-06-01 00:00:00')"
    )
    for gpus, end in ((0, "2023-06-01 02:00:00"), (1, "2023-06-01 01:00:00")):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(reserve.format(gpus=gpus, end=end))
    with engine.begin() as conn:
        conn.exec_driver_sql(reserve.format(gpus=1, end="2023-06-01 02:00:00"))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # one reservation per workload
        conn.exec_driver_sql(reserve.format(gpus=1, end="2023-06-01 02:00:00"))


def _at_revision_with_a_workload(tmp_path, revision, status):
    """Return a SQLite engine migrated to `revision` holding one workload 'old' in `status`."""
    from store.db import make_engine
    from store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, revision)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO organizations (id, name, kind, created_at) "
            "VALUES ('acme', 'Acme', 'enterprise', '2023-06-01 00:00:00')"
        )
        _insert_workload(conn, "old", status)
    return engine


def _downgrade(engine, revision):
    """Run Alembic's downgrade to `revision` on `engine` in one transaction."""
    from alembic import command

    from store.migrate import alembic_config

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_scheduled_work_migration_keeps_rows_and_downgrades_only_without_schedules(tmp_path):
    from sqlalchemy import text

    from store.migrate import upgrade

    engine = _at_revision_with_a_workload(tmp_path, "0010", "routed")
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT status FROM workloads")).scalar_one() == "routed"
        _insert_workload(conn, "new", "scheduled")
    with pytest.raises(RuntimeError, match="1 workloads are scheduled"):
        _downgrade(engine, "0010")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE workloads SET status = 'cancelled' WHERE id = 'new'")
    _downgrade(engine, "0010")
    with pytest.raises(Exception, match="CHECK constraint failed"), engine.begin() as conn:
        _insert_workload(conn, "again", "scheduled")


def test_workloads_from_before_the_movable_column_stay_movable_and_it_downgrades(tmp_path):
    from sqlalchemy import text

    from store.migrate import upgrade

    engine = _at_revision_with_a_workload(tmp_path, "0012", "running")
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT movable FROM workloads")).scalar_one() in (True, 1)
    _downgrade(engine, "0012")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT status FROM workloads")).scalar_one() == "running"
        columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(workloads)")}
    assert "movable" not in columns


def test_every_index_the_models_declare_is_in_the_migrated_database(engine):
    # The models and the migrations are written separately; a declared index that no migration
    # creates would leave its query scanning the table on every real database.
    from sqlalchemy import inspect

    import store.audio_models
    import store.incident_models
    import store.ledger_models  # noqa: F401  (every module that declares tables)
    from store.models import Base

    inspector = inspect(engine)
    checked = 0
    for table in Base.metadata.sorted_tables:
        have = {
            ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"]))
            for ix in inspector.get_indexes(table.name)
        }
        for c in inspector.get_unique_constraints(table.name):
            have[c["name"]] = (tuple(c["column_names"]), True)
        for index in table.indexes:
            declared = (tuple(c.name for c in index.columns), bool(index.unique))
            assert have.get(index.name) == declared, (table.name, index.name)
            checked += 1
    assert "audio_alerts" in Base.metadata.tables and checked >= 10
