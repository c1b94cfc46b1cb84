"""Ingest's metrics: the standard set plus submissions by outcome (registered once per process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter

from phoihop_common.metrics import ServiceMetrics


@dataclass(frozen=True)
class IngestMetrics:
    """Standard service metrics and ingest's own."""

    service: ServiceMetrics
    submissions: Counter

    def count(self, outcome: str, n: int = 1) -> None:
        """Count submissions by outcome (accepted, duplicate, rejected, unavailable)."""
        if n:
            self.submissions.labels(outcome).inc(n)


@cache
def ingest_metrics() -> IngestMetrics:
    """The metrics of this process."""
    return IngestMetrics(
        service=ServiceMetrics.create("ingest"),
        submissions=Counter(
            "phoihop_ingest_submissions_total", "Submissions by outcome", ["outcome"]
        ),
    )
