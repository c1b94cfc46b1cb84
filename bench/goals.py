"""The issue's goals beside a run's figures: met / missed / not measured, never asserted."""

from __future__ import annotations

from typing import Any

from bench.config import (
    CORES,
    GOAL_CPU_MS_PER_REC,
    GOAL_E2E_PER_S,
    GOAL_KNEE_PER_S,
    GOAL_OPEN_CASES,
    GOAL_P99_MS,
    GOAL_P99_RATE,
    GOAL_PER_RECORD_SHARE,
    GOAL_RSS_MB,
    Sizes,
)
from bench.helpers import bound_by
from phoihop_embedded.stack import SERVICES
from phoihop_schemas.topics import (
    CANONICAL,
    INBOUND_RESPONSES,
    LIFECYCLE_TOPICS,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
    ROUTING_TIMERS,
)

# the topics each service consumes (broker records per recommendation -> records per service)
CONSUMED: dict[str, frozenset[str]] = {
    "routing": frozenset(
        t.name for t in (CANONICAL["received"], ROUTING_DEDUP, ROUTING_COMMANDS, ROUTING_TIMERS)
    )
    | {INBOUND_RESPONSES.name},
    "notify": frozenset(t.name for t in LIFECYCLE_TOPICS),
    "audit": frozenset(t.name for t in CANONICAL.values()),
}


def evaluate_goals(results: dict[str, Any], sizes: Sizes) -> list[dict[str, Any]]:
    """The issue's goals beside the figures: met / missed / not measured, never asserted."""
    r = results
    goals: list[dict[str, Any]] = []

    def add(
        name: str,
        value: Any,
        target: str,
        met: bool | None,
        phase_cpu: Any,
        note: str = "",
        stage: str = "",
    ) -> None:
        entry: dict[str, Any] = {
            "goal": name, "value": value, "target": target,
            "status": "not measured" if met is None else ("met" if met else "missed"),
        }  # fmt: skip
        if note:
            entry["note"] = note
        if met is False and phase_cpu:
            entry["bound_by"] = stage + bound_by(phase_cpu, cores=CORES)
            entry["profiler"] = (
                "py-spy top frames per service: see the profile section"
                if r.get("profile")
                else "`make profile` records py-spy top frames per service"
            )
        goals.append(entry)

    steps: list[dict[str, Any]] = r.get("e2e", {}).get("steps", [])
    at_goal = next((x for x in steps if x["offered_per_s"] == GOAL_P99_RATE), None)
    if at_goal is not None:
        p99 = at_goal.get("p99_ms")
        met = at_goal.get("complete") and p99 is not None and p99 <= GOAL_P99_MS
        note = f"{at_goal.get('delivered')}/{at_goal.get('submitted_ok')} delivered"
        add(f"e2e p99 at {GOAL_P99_RATE:g}/s offered, all delivered", p99,
            f"<= {GOAL_P99_MS:.0f} ms", bool(met), at_goal.get("cpu"), note=note)  # fmt: skip
    elif steps and max(x["offered_per_s"] for x in steps) < GOAL_P99_RATE <= max(
        sizes.ladder_rates
    ):
        last = steps[-1]
        note = f"ladder stopped at {last['offered_per_s']:g}/s ({last.get('verdict')})"
        add(f"e2e p99 at {GOAL_P99_RATE:g}/s offered, all delivered", None,
            f"<= {GOAL_P99_MS:.0f} ms", False, last.get("cpu"), note=note)  # fmt: skip
    else:
        add(f"e2e p99 at {GOAL_P99_RATE:g}/s offered, all delivered", None,
            f"<= {GOAL_P99_MS:.0f} ms", None, None)  # fmt: skip
    knee = r.get("e2e", {}).get("knee", {})
    rate = knee.get("rate_per_s")
    met_knee: bool | None = None
    if knee:
        met_knee = (rate or 0) >= GOAL_KNEE_PER_S
        if not met_knee and not knee.get("bounded"):
            met_knee = None  # the ladder did not go high enough to find it
    miss = next((x for x in steps if x.get("verdict") != "ok"), None)
    add("knee (highest rate with p99 <= 1 s)", rate, f">= {GOAL_KNEE_PER_S:.0f}/s", met_knee,
        miss.get("cpu") if miss else None, note=knee.get("note", ""))  # fmt: skip
    cpu_value, cpu_note = _cpu_per_rec_figure(results, steps)
    add("total service CPU per recommendation", cpu_value,
        f"<= {GOAL_CPU_MS_PER_REC:g} ms", None if cpu_value is None else
        cpu_value <= GOAL_CPU_MS_PER_REC, None, note=cpu_note)  # fmt: skip
    for name, value, note in per_record_shares(results, steps):
        add(name, value, f">= {GOAL_PER_RECORD_SHARE:g}",
            None if value is None else value >= GOAL_PER_RECORD_SHARE, None, note=note)  # fmt: skip
    burst = r.get("burst", {})
    if burst:
        v = burst.get("sustained_per_s")
        add("burst (bulk import) sustained throughput (issue 7)", v,
            f">= {GOAL_E2E_PER_S:.0f} rec/s", None if v is None else v >= GOAL_E2E_PER_S,
            burst.get("cpu"), stage=_slowest_stage(burst))  # fmt: skip
    mem = r.get("memory", {})
    after = mem.get("rss_after_mb") or {}
    peaks = {n: after[n]["peak_mb"] for n in SERVICES if n in after}
    worst = max(peaks.values()) if peaks else None
    loaded = mem.get("open_cases_loaded", 0)
    note = "" if loaded >= GOAL_OPEN_CASES else f"measured with {loaded} open cases, not 100,000"
    add("peak RSS per service with open cases", peaks or None, f"<= {GOAL_RSS_MB:.0f} MB",
        None if worst is None else worst <= GOAL_RSS_MB, mem.get("cpu"), note)  # fmt: skip
    comp = r.get("scale", {}).get("comparison") or {}
    if comp:
        cpu = (comp.get("cpu_ms_per_rec_ratio") or {}).get("services_total")
        add("scale-out: delivered rate with 2 routing/notify/audit workers vs 1 (issue 13)",
            comp.get("delivered_per_s_ratio"), ">= 0.9× (does not drop on 2 cores)",
            not comp.get("rate_dropped"), None,
            note=f"CPU per recommendation ×{cpu} with 2 workers")  # fmt: skip
    return goals


def per_record_shares(
    results: dict[str, Any], steps: list[dict[str, Any]]
) -> list[tuple[str, float | None, str]]:
    """Ceiling CPU per record over each service's CPU per record it consumes (1 = as cheap).

    Routing against the bare faust passthrough, notify and audit against the plain aiokafka
    produce+consume loop; a service's records per recommendation are the broker records of
    the topics it consumes (`CONSUMED`), in the run `_cpu_per_rec_figure` takes. The notes
    of notify and audit also set them and the loop against the durable-consumer floor
    (`bench.floor`), when the run measured it.
    """
    ceiling = results.get("ceiling", {})
    baselines = {
        "routing": ("faust routing stages / bare faust passthrough, per record",
                    (ceiling.get("faust") or {}).get("cpu_ms_per_record")),
        "notify": ("notify / plain aiokafka loop, per event",
                   (ceiling.get("kafka") or {}).get("client_cpu_ms_per_record")),
        "audit": ("audit / plain aiokafka loop, per event",
                  (ceiling.get("kafka") or {}).get("client_cpu_ms_per_record")),
    }  # fmt: skip
    floor = (ceiling.get("floor") or {}).get("cpu_ms_per_record")
    run, where = _cpu_run(results, steps)
    by_topic = ((run or {}).get("broker_records") or {}).get("by_topic") or {}
    cpu = (run or {}).get("cpu_ms_per_rec") or {}
    out: list[tuple[str, float | None, str]] = []
    for service, (name, base) in baselines.items():
        records = sum(v for t, v in by_topic.items() if t in CONSUMED[service])
        spent = cpu.get(service)
        if not base or not records or not spent:
            out.append((name, None, ""))
            continue
        per_record = spent / records
        note = (
            f"{where}: {per_record:.3f} ms per record ({records:.2f} records per "
            f"recommendation) vs {base:.3f} ms"
        )
        if service in ("notify", "audit") and floor:
            note += (
                f"; the durable-consumer floor (read, decode, store, commit) costs "
                f"{floor:.3f} ms per record = {base / floor:.2f} of the loop, and this "
                f"service {floor / per_record:.2f} of that floor"
            )
        best = _best_share(service, ceiling=ceiling, base=base, records=records)
        if best is not None:
            note += f"; {best}"
        out.append((name, round(base / per_record, 3), note))
    return out


def _best_share(
    service: str, *, ceiling: dict[str, Any], base: float, records: float
) -> str | None:
    """The most the service's share can be, given the work it cannot skip (`bench.bounds`)."""
    b = ceiling.get("bounds") or {}
    if service == "routing" and b.get("routing_stages"):
        stages = b["routing_stages"]["cpu_ms_per_record"]
        return (
            f"at most {base / (base + stages):.2f} reachable: the passthrough's consuming "
            f"and producing plus routing's stage logic alone ({stages:.3f} ms per record)"
        )
    if service == "audit" and b.get("audit_handler"):
        handler = b["audit_handler"]["cpu_ms_per_event"]
        return (
            f"at most {base / handler:.2f} reachable: audit's handler alone, no Kafka, costs "
            f"{handler:.3f} ms per event"
        )
    floor = (ceiling.get("floor") or {}).get("cpu_ms_per_record")
    if service == "notify" and b.get("webhook") and floor:
        post = b["webhook"]["cpu_ms_per_delivery"]
        least = floor + post / records  # one webhook per recommendation (one subscriber)
        return (
            f"at most {base / least:.2f} reachable: the durable-consumer floor plus one signed "
            f"webhook per recommendation ({post:.3f} ms each, {records:.2f} events per "
            f"recommendation)"
        )
    return None


def _cpu_run(
    results: dict[str, Any], steps: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str]:
    """The run CPU figures are taken from: the profile run, else the knee's ladder step."""
    run = results.get("profile", {}).get("run")
    if run:
        return run, f"profile run at {results['profile']['rate_per_s']:g}/s"
    ok = [x for x in steps if x.get("verdict") == "ok"] or steps
    if not ok:
        return None, ""
    step = max(ok, key=lambda x: x["offered_per_s"])
    return step, f"ladder step at {step['offered_per_s']:g}/s"


def _cpu_per_rec_figure(
    results: dict[str, Any], steps: list[dict[str, Any]]
) -> tuple[float | None, str]:
    """Total service CPU per recommendation: the profile run, else the knee's ladder step."""
    run, where = _cpu_run(results, steps)
    if run is None:
        return None, ""
    return run["cpu_ms_per_rec"]["services_total"], where


def _slowest_stage(e2e: dict[str, Any]) -> str:
    """Which stage lags, from when audit had stored everything versus the last webhook."""
    audit_s, hooks_s = e2e.get("audit_done_after_s"), e2e.get("webhooks_done_after_s")
    incomplete = e2e.get("webhook_delivered", 0) < e2e.get("submitted_ok", 0)
    if audit_s is not None and hooks_s is not None and (incomplete or hooks_s > 2 * audit_s):
        return (
            f"slowest stage: webhook delivery (notify) — audit had stored all "
            f"{e2e.get('submitted_ok')} routing outcomes {audit_s:.0f} s after the first "
            f"submission, webhooks reached {e2e.get('webhook_delivered')} after {hooks_s:.0f} s. "
        )
    return ""
