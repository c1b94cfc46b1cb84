"""Audit metrics: the standard service set plus stored events, business gauges and gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, func, select

from phoihop_audit.db import recommendations
from phoihop_audit.readmodel import OPEN_STATUSES, OVERDUE_STATUSES
from phoihop_common.metrics import ServiceMetrics


@dataclass(frozen=True)
class AuditMetrics:
    """Every metric the audit service exports."""

    service: ServiceMetrics
    stored: Counter
    duplicates: Counter
    open: Gauge
    overdue: Gauge
    on_time_ratio: Gauge
    gaps: Gauge

    @classmethod
    def create(cls) -> AuditMetrics:
        """Register the metrics (once per process)."""
        return cls(
            service=ServiceMetrics.create("audit"),
            stored=Counter("phoihop_audit_events_stored_total", "Events stored", ["type"]),
            duplicates=Counter(
                "phoihop_audit_duplicate_deliveries_total", "Deliveries skipped as already stored"
            ),
            open=Gauge("phoihop_audit_recommendations_open", "Open recommendations", ["agency"]),
            overdue=Gauge(
                "phoihop_audit_recommendations_overdue",
                "Open recommendations past their deadline",
                ["agency"],
            ),
            on_time_ratio=Gauge(
                "phoihop_audit_answered_on_time_ratio",
                "Share of answered recommendations answered on time",
                ["agency"],
            ),
            gaps=Gauge(
                "phoihop_audit_sequence_gaps", "Recommendations whose sequence numbers have a hole"
            ),
        )

    def refresh(self, engine: Engine) -> None:
        """Recompute the business gauges from the read model."""
        now = datetime.now(UTC).replace(tzinfo=None)
        r = recommendations
        agency = func.coalesce(r.c.agency, "unassigned")
        with engine.connect() as conn:
            open_rows = conn.execute(
                select(agency, func.count()).where(r.c.status.in_(OPEN_STATUSES)).group_by(agency)
            ).all()
            overdue_rows = conn.execute(
                select(agency, func.count())
                .where(r.c.status.in_(OVERDUE_STATUSES), r.c.deadline < now)
                .group_by(agency)
            ).all()
            answered_rows = conn.execute(
                select(agency, func.count(), func.count().filter(r.c.answered_on_time.is_(True)))
                .where(r.c.answered_at.is_not(None))
                .group_by(agency)
            ).all()
            gaps = conn.execute(select(func.count()).where(r.c.has_gap.is_(True))).scalar_one()
        for gauge in (self.open, self.overdue, self.on_time_ratio):
            gauge.clear()
        for a, n in open_rows:
            self.open.labels(a).set(n)
        for a, n in overdue_rows:
            self.overdue.labels(a).set(n)
        for a, total, on_time in answered_rows:
            self.on_time_ratio.labels(a).set(on_time / total if total else 0.0)
        self.gaps.set(gaps)
