"""`bench.bounds`: the work routing, audit and notify cannot skip, run for real (no timing).

What it times must be the whole of that work, or the bound it gives `make bench` would be
too low: routing's pipeline routes every submission through its three stages, audit's
handler stores a chain that verifies, every webhook is signed, sent and answered 2xx by
the receiver process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import bounds, routing_stages


def test_every_recommendation_is_routed_through_the_three_stages() -> None:
    m = asyncio.run(routing_stages.measure(recommendations=120, open_cases=40, batch=25))
    assert m["recommendations"] == 120
    assert set(m["cpu_ms_per_rec_by_stage"]) == {"received", "dedup", "cases"}
    # one received, at least one dedup record and one route command each
    assert m["records_per_rec"] >= 3.0
    # assigned or merged for each, some duplicate suggestions on top
    assert m["lifecycle_events_per_rec"] >= 1.0
    assert m["cpu_ms_per_record"] * m["records_per_rec"] == pytest.approx(
        m["cpu_ms_per_rec"], rel=0.01
    )


def test_bounds_measure_all_three_on_real_work(tmp_path: Path) -> None:
    out = bounds.measure(tmp=tmp_path, records=0)  # the smallest size: 200 of each
    assert out["routing_stages"]["recommendations"] == 200
    assert out["audit_handler"]["verified"] == 200 + 40  # the warm-up events are chained too
    assert out["webhook"]["deliveries"] == 200  # `webhook` raises unless every one was 2xx
    lines = (tmp_path / "bounds-receiver.log").read_text().splitlines()
    assert len(lines) == 200 + 50  # the warm-up deliveries, then the timed ones
    assert all(line.split("\t")[1] == "200" for line in lines)
    figures = (
        out["routing_stages"]["cpu_ms_per_record"],
        out["audit_handler"]["cpu_ms_per_event"],
        out["webhook"]["cpu_ms_per_delivery"],
    )
    assert all(f > 0 for f in figures)
