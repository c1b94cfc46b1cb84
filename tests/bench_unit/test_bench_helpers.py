"""The benchmark's pure arithmetic: speedscope own time, knee, verdicts, records per topic.

No broker, no processes, no timing: figures computed from hand-made inputs.
"""

from __future__ import annotations

from typing import Any

from bench.generator import lag_reasons
from bench.goals import per_record_shares
from bench.ladder import KNEE_P99_MS, knee, step_figures, verdict
from bench.profile import cpu_per_rec, records_per_rec, summarise_speedscope, topic_kind
from phoihop_schemas.topics import CANONICAL, ROUTING_COMMANDS, ROUTING_DEDUP

SITE = "/x/.venv/lib/python3.11/site-packages/"
STDLIB = "/usr/lib/python3.11/"


def _speedscope() -> dict[str, Any]:
    frames = [
        {"name": "<module>", "file": "/w/services/routing/src/phoihop_routing/__main__.py"},
        {"name": "Pipeline.on_received", "file": "/w/services/routing/src/phoihop_routing/a.py"},
        {"name": "dumps", "file": STDLIB + "json/__init__.py"},
        {"name": "EpollSelector.select", "file": STDLIB + "selectors.py"},
        {"name": "Fetcher.fetch", "file": SITE + "aiokafka/consumer/fetcher.py"},
    ]
    return {
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "samples": [[0, 1, 2], [0, 1, 2], [0, 3], [0, 1, 4], []],
                "weights": [0.01] * 5,
            },
            {"type": "evented", "events": []},
        ],
    }


def test_speedscope_own_time_goes_to_the_leaf() -> None:
    s = summarise_speedscope(_speedscope())
    assert s.samples == 5
    assert s.threads == 1
    top = s.top(3)
    assert top[0]["function"] == "dumps (json/__init__.py)"
    assert top[0]["share"] == 0.4
    assert {p["package"] for p in s.top_packages()} == {"<stdlib>", "aiokafka"}
    waits = [f for f in s.top(10) if f.get("wait")]
    assert [f["function"] for f in waits] == ["EpollSelector.select (selectors.py)"]
    assert round(s.waiting_share, 2) == 0.2


def test_speedscope_inclusive_counts_first_party_once_and_skips_entry_points() -> None:
    s = summarise_speedscope(_speedscope())
    ours = s.top_inclusive()
    assert [f["function"] for f in ours] == ["Pipeline.on_received (phoihop_routing/a.py)"]
    assert ours[0]["share"] == 0.6


def _step(rate: float, p99: float | None, *, complete: bool = True, **extra: Any) -> dict[str, Any]:
    return {"offered_per_s": rate, "p99_ms": p99, "complete": complete, **extra}


def test_verdicts() -> None:
    assert verdict(_step(10, 300)) == "ok"
    assert verdict(_step(10, KNEE_P99_MS + 1)) == "slow"
    assert verdict(_step(10, 6000), stop_p99_ms=5000) == "saturated"
    assert verdict(_step(10, 300, behind=True)) == "saturated"
    assert verdict(_step(10, 300, complete=False)) == "incomplete"
    assert verdict(_step(10, 300, generator_lag=["late"])) == "generator lag"


def test_knee_is_the_last_ok_rate_before_the_first_miss() -> None:
    steps = [
        _step(5, 100, verdict="ok"),
        _step(20, 400, verdict="ok"),
        _step(50, 3000, verdict="slow"),
        _step(75, 200, verdict="ok"),  # above a miss: noise, not the knee
    ]
    k = knee(steps)
    assert k["rate_per_s"] == 20
    assert k["bounded"]
    assert k["first_miss_per_s"] == 50
    assert knee([_step(5, 100, verdict="ok")])["bounded"] is False
    assert knee([_step(5, 9000, verdict="saturated")])["rate_per_s"] is None


def test_step_figures_latency_from_the_scheduled_send() -> None:
    submitted = {f"id{i}": 100.0 + i / 10 for i in range(40)}  # 10/s for 4 s
    receipts = {k: t + 0.2 for k, t in submitted.items() if k != "id39"}
    out = step_figures(
        rate=10, seconds=4, submitted=submitted, receipts=receipts, generator={"lag": []}
    )
    assert out["delivered"] == 39
    assert not out["complete"]
    assert out["p50_ms"] == 200.0
    assert out["second_half"]["sent_per_s"] == 10.0
    assert not out["behind"]
    slow = {k: t + 3.0 for k, t in submitted.items()}  # nothing arrives in the second half
    out = step_figures(rate=10, seconds=4, submitted=submitted, receipts=slow, generator={})
    assert out["behind"]


def test_generator_lag_reasons() -> None:
    fine = {"offered_per_s": 100, "planned": 500, "achieved_per_s": 99.9, "core_share": 0.1,
            "send_late_ms": {"p99_ms": 2.0}, "dropped": 0}  # fmt: skip
    assert lag_reasons(fine) == []
    late = fine | {"achieved_per_s": 80.0, "send_late_ms": {"p99_ms": 400.0}, "core_share": 0.9}
    assert len(lag_reasons(late)) == 3


def test_records_per_recommendation_by_kind() -> None:
    before = {"phoihop.recommendation.received": 10, "phoihop-routing-cases-changelog": 0}
    after = {
        "phoihop.recommendation.received": 20,
        "phoihop-routing-cases-changelog": 15,
        "phoihop.notification.outcome": 10,
        "phoihop.routing.commands": 10,
    }
    out = records_per_rec(before, after, 10)
    assert out["per_rec"] == 4.5
    assert out["by_kind"] == {
        "changelogs": 1.5,
        "lifecycle events": 1.0,
        "outcomes": 1.0,
        "internal hops": 1.0,
    }
    assert topic_kind("__consumer_offsets") == "broker internal"


def test_cpu_per_rec_totals_services_only() -> None:
    cpu = {"processes": {"routing": {"cpu_s": 1.0}, "notify": {"cpu_s": 0.5},
                         "broker": {"cpu_s": 2.0}}}  # fmt: skip
    out = cpu_per_rec(cpu, 100, ("routing", "notify", "audit"))
    assert out == {"routing": 10.0, "notify": 5.0, "services_total": 15.0, "broker": 20.0}


def test_per_record_shares_divide_each_service_by_the_records_it_consumes() -> None:
    received, dedup, commands = (CANONICAL["received"].name, ROUTING_DEDUP.name,
                                 ROUTING_COMMANDS.name)  # fmt: skip
    assigned, outcome = CANONICAL["assigned"].name, CANONICAL["notification_outcome"].name
    run = {
        "cpu_ms_per_rec": {"routing": 6.0, "notify": 2.0, "audit": 3.0, "services_total": 11.0},
        "broker_records": {
            "by_topic": {received: 1.0, dedup: 1.0, commands: 1.0, assigned: 1.0, outcome: 1.0}
        },
    }
    results = {
        "ceiling": {
            "faust": {"cpu_ms_per_record": 0.5},
            "kafka": {"client_cpu_ms_per_record": 0.1},
        },
        "profile": {"rate_per_s": 50, "run": run},
    }
    shares = {name.split(" ")[0]: value for name, value, _ in per_record_shares(results, [])}
    # routing reads received, dedup, commands: 6 ms / 3 records = 2 ms against 0.5 ms
    assert shares["faust"] == 0.25
    # notify reads the lifecycle events (received, assigned): 1 ms against 0.1 ms
    assert shares["notify"] == 0.1
    # audit reads every canonical topic (received, assigned, outcome): 1 ms against 0.1 ms
    assert shares["audit"] == 0.1
    # with the durable-consumer floor measured, notify's and audit's notes set them against it
    results["ceiling"]["floor"] = {"cpu_ms_per_record": 0.25}
    notes = {name.split(" ")[0]: note for name, _, note in per_record_shares(results, [])}
    assert "0.250 ms per record = 0.40 of the loop" in notes["notify"]
    assert "this service 0.25 of that floor" in notes["audit"]
    assert "floor" not in notes["faust"]
    # no passthrough ceiling in the run: not measured
    del results["ceiling"]["faust"]
    assert per_record_shares(results, [])[0][1] is None


def test_per_record_shares_say_how_far_each_can_go_given_the_work_it_cannot_skip() -> None:
    received, commands = CANONICAL["received"].name, ROUTING_COMMANDS.name
    assigned = CANONICAL["assigned"].name
    run = {
        "cpu_ms_per_rec": {"routing": 6.0, "notify": 2.0, "audit": 3.0, "services_total": 11.0},
        "broker_records": {"by_topic": {received: 1.0, commands: 1.0, assigned: 1.0}},
    }
    results: dict[str, Any] = {
        "ceiling": {
            "faust": {"cpu_ms_per_record": 0.5},
            "kafka": {"client_cpu_ms_per_record": 0.1},
            "floor": {"cpu_ms_per_record": 0.1},
        },
        "profile": {"rate_per_s": 50, "run": run},
    }
    assert all("reachable" not in note for _, _, note in per_record_shares(results, []))
    results["ceiling"]["bounds"] = {
        "routing_stages": {"cpu_ms_per_record": 1.5},
        "audit_handler": {"cpu_ms_per_event": 0.4},
        "webhook": {"cpu_ms_per_delivery": 0.3},
    }
    notes = {name.split(" ")[0]: note for name, _, note in per_record_shares(results, [])}
    # routing: passthrough / (passthrough + stages) = 0.5 / 2.0
    assert "at most 0.25 reachable" in notes["faust"]
    # audit: loop / handler = 0.1 / 0.4
    assert "at most 0.25 reachable" in notes["audit"]
    # notify reads received and assigned (2 events per recommendation), one webhook each:
    # loop / (floor + 0.3 / 2) = 0.1 / 0.25
    assert "at most 0.40 reachable" in notes["notify"]
