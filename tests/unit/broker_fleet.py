"""A small seeded fleet and a grid the test sets per zone, for the broker's unit tests."""

from datetime import UTC, datetime, timedelta

from store.models import ComputeNode, Organization
from tools.broker.routing import JobSpec, submit_workload
from tools.broker.scoring import ScoreWeights
from tools.errors import NoGridDataError
from tools.grid import GridReading

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
CARBON_ONLY = ScoreWeights(carbon=1.0, price=0.0, utilization=0.0)


class StaticGrid:
    """A grid whose readings the test sets per zone."""

    name = "sim"

    def __init__(self, values: dict[str, tuple[float | None, float | None]]) -> None:
        self.values = dict(values)

    def reading(self, zone: str, at: datetime) -> GridReading:
        if zone not in self.values:
            raise NoGridDataError(f"no reading for {zone}")
        ci, price = self.values[zone]
        return GridReading(
            zone=zone,
            ts=at.replace(minute=0, second=0, microsecond=0),
            source="sim",
            carbon_intensity=ci,
            price_eur_per_mwh=price,
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        return [self.reading(zone, start + timedelta(hours=h)) for h in range(hours)]


def node(id, zone, *, gpus=8, reserved=0, model="H100", status="online", cents=200):
    return ComputeNode(
        id=id,
        name=id,
        owner_id="dc",
        kind="datacenter",
        zone=zone,
        gpu_model=model,
        gpu_count=gpus,
        reserved_gpus=reserved,
        power_kw_per_gpu=0.7,
        price_per_gpu_hour_minor=cents,
        currency="EUR",
        status=status,
        created_at=NOW,
    )


def seed_fleet(session):
    """Add two organisations and five nodes (FR, DE, ES A100, NL 2 GPUs, BE offline)."""
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
            Organization(id="dc", name="DC", kind="datacenter", created_at=NOW),
        ]
    )
    session.flush()
    session.add_all(
        [
            node("fr-1", "FR", reserved=2, cents=300),
            node("de-1", "DE", cents=150),
            node("es-1", "ES", model="A100", cents=180),
            node("nl-1", "NL", gpus=2, cents=250),
            node("be-1", "BE", status="offline"),
        ]
    )
    session.flush()
    return session


GRID = {"FR": (60, 90), "DE": (420, 80), "ES": (180, 70), "NL": (330, 85), "BE": (170, 95)}


def submit(session, **spec):
    spec = {"gpu_count": 4, "duration_hours": 6, **spec}
    return submit_workload(
        session=session, org_id="acme", name="job", spec=JobSpec(**spec), now=NOW
    )
