"""`/metrics` in the Prometheus text format (prometheus-client).

Store figures (workloads, routing decisions, CO2 avoided, incidents, payouts) are read from the
database at scrape time by a custom collector, so every replica reports the same, right values.
The background loop's pass duration is this process's own.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from store.incident_models import INCIDENT_STATES
from store.metrics_repo import store_metrics
from ui.services import Services

PREFIX = "tgtg"
CLOSED_INCIDENT_STATES = ("RESOLVED",)


class StoreCollector(Collector):
    """Collect the store's counts, and the console loop's last pass, at every scrape."""

    def __init__(self, svc: Services, app: FastAPI) -> None:
        """Read from `svc`'s database; the loop figures come from `app.state.console` if any."""
        self.svc = svc
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (a failing store gives `tgtg_store_up 0` and no counts)."""
        up = GaugeMetricFamily(f"{PREFIX}_store_up", "1 when the store answered this scrape.")
        try:
            with self.svc.sessions() as session:
                m = store_metrics(session=session)
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            yield from self._loop()
            return
        up.add_metric([], 1)
        yield up
        workloads = GaugeMetricFamily(
            f"{PREFIX}_workloads", "Workloads in the store by status.", labels=["status"]
        )
        for status, n in m.workloads_by_status.items():
            workloads.add_metric([status], n)
        yield workloads
        decisions = CounterMetricFamily(
            f"{PREFIX}_routing_decisions",
            "Routing decisions recorded, by kind (route, reroute) and outcome.",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), n in m.decisions_by_kind_outcome.items():
            decisions.add_metric([kind, outcome], n)
        yield decisions
        yield GaugeMetricFamily(
            f"{PREFIX}_co2_avoided_kg",
            "kg CO2 avoided by completed work, summed over carbon receipts (against the "
            "carbon-agnostic baseline; may fall when a receipt is negative).",
            value=m.co2_avoided_kg,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_carbon_receipts", "Carbon receipts minted.", value=m.receipts
        )
        incidents = GaugeMetricFamily(
            f"{PREFIX}_incidents", "Incidents by state.", labels=["state"]
        )
        for state in INCIDENT_STATES:
            incidents.add_metric([state], m.incidents_by_state[state])
        yield incidents
        yield GaugeMetricFamily(
            f"{PREFIX}_incidents_open",
            "Incidents not yet resolved.",
            value=sum(
                n for s, n in m.incidents_by_state.items() if s not in CLOSED_INCIDENT_STATES
            ),
        )
        payouts = GaugeMetricFamily(
            f"{PREFIX}_payouts", "Gamer payouts by status.", labels=["status"]
        )
        for status, n in m.payouts_by_status.items():
            payouts.add_metric([status], n)
        yield payouts
        yield from self._loop()

    def _loop(self) -> Iterator[Metric]:
        rt = getattr(self.app.state, "console", None)
        if rt is None:
            return
        yield CounterMetricFamily(
            f"{PREFIX}_loop_passes", "Background passes this process completed.", value=rt.passes
        )
        if rt.pass_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_loop_pass_duration_seconds",
                "Duration of this process's last background pass (ingest, incidents, alerts).",
                value=rt.pass_seconds,
            )


def register_metrics(app: FastAPI, svc: Services, *, path: str = "/metrics") -> CollectorRegistry:
    """Serve the Prometheus metrics of `svc`'s store (and the app's console loop) at `path`.

    Args:
        app: The application to add the route to.
        svc: The services whose store is counted.
        path: Where the metrics are served.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(svc, app))

    @app.get(path, include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
