"""The latency ladder's arithmetic: one step's figures, its verdict, the knee (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.load import latency_summary

KNEE_P99_MS = 1000.0  # the knee: highest offered rate with p99 <= 1 s, every one delivered
STOP_P99_MS = 5000.0  # the ladder stops once p99 passes this (or delivery falls behind)
BEHIND_SHARE = 0.85  # delivery in the window's second half below this share of the sent rate
BEHIND_MIN_RECORDS = 3  # ... and short by at least this many (low rates are a few per second)
STOPS = ("saturated", "incomplete", "generator lag")


def step_figures(
    *,
    rate: float,
    seconds: float,
    submitted: Mapping[str, float],
    receipts: Mapping[str, float],
    generator: Mapping[str, Any],
) -> dict[str, Any]:
    """Submit (intended send time) → first signed webhook, per id; delivery and pace.

    Latency starts at the time the open-loop schedule wanted the request sent, so a late
    generator or a slow answer counts against the measured figure (no coordinated omission).
    """
    lat = [receipts[i] - t for i, t in submitted.items() if i in receipts]
    out: dict[str, Any] = {
        "offered_per_s": rate,
        "offered_s": seconds,
        "generator_per_s": generator.get("achieved_per_s"),
        "generator_core_share": generator.get("core_share"),
        "generator_lag": list(generator.get("lag") or []),
        "submitted_ok": len(submitted),
        "delivered": len(lat),
        "complete": bool(submitted) and len(lat) == len(submitted),
        **latency_summary(lat),
        "answer_ms": generator.get("answer_ms"),
    }
    if lat and submitted:
        first = min(submitted.values())
        last_receipt = max(receipts[i] for i in submitted if i in receipts)
        span = last_receipt - first
        out["delivered_per_s"] = round(len(lat) / span, 1) if span > 0 else None
        out["drain_after_offer_s"] = round(last_receipt - (first + seconds), 2)
        # in the window's second half a bus that keeps up delivers as fast as it is offered
        lo, hi = first + seconds / 2, first + seconds
        sent = sum(1 for t in submitted.values() if lo <= t < hi)
        got = sum(1 for i in submitted if i in receipts and lo <= receipts[i] < hi)
        out["second_half"] = {
            "sent_per_s": round(sent / (seconds / 2), 1),
            "delivered_per_s": round(got / (seconds / 2), 1),
        }
        out["behind"] = sent - got >= BEHIND_MIN_RECORDS and got < BEHIND_SHARE * sent
    return out


def verdict(step: Mapping[str, Any], *, stop_p99_ms: float = STOP_P99_MS) -> str:
    """ok (p99 within the knee limit, all delivered), slow, saturated, incomplete, generator lag.

    The last three stop the ladder: p99 past `stop_p99_ms` or delivery falling behind the
    offered rate (saturated), webhooks missing even after the bus drained (incomplete), or
    the generator not keeping its schedule (what follows would measure the generator).
    """
    if step.get("generator_lag"):
        return "generator lag"
    if not step.get("complete"):
        return "incomplete"
    p99 = step.get("p99_ms")
    if p99 is None or p99 > stop_p99_ms or step.get("behind"):
        return "saturated"
    return "ok" if p99 <= KNEE_P99_MS else "slow"


def one_line(step: Mapping[str, Any]) -> str:
    """A progress line for one step."""

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:,.0f}"

    cpu = (step.get("cpu_ms_per_rec") or {}).get("services_total")
    records = (step.get("broker_records") or {}).get("per_rec")
    lag = "; generator: " + ", ".join(step["generator_lag"]) if step.get("generator_lag") else ""
    return (
        f"{step['offered_per_s']:g}/s: {step.get('delivered')}/{step.get('submitted_ok')} "
        f"delivered, p50/p95/p99 {ms(step.get('p50_ms'))}/{ms(step.get('p95_ms'))}/"
        f"{ms(step.get('p99_ms'))} ms, services {cpu} ms CPU/rec, {records} broker records/rec "
        f"-> {step.get('verdict', '?')}{lag}"
    )


def knee(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Highest offered rate with p99 <= 1 s (all delivered), climbing until the first miss."""
    best: float | None = None
    first_miss: Mapping[str, Any] | None = None
    for step in sorted(steps, key=lambda s: s["offered_per_s"]):
        if step.get("verdict") == "ok":
            best = step["offered_per_s"]
            continue
        first_miss = step
        break
    out: dict[str, Any] = {"rate_per_s": best, "limit_ms": KNEE_P99_MS}
    if first_miss is None:
        out["note"] = "every rate tried met the limit: the knee is at or above the last rate"
        out["bounded"] = False
    else:
        out["first_miss_per_s"] = first_miss["offered_per_s"]
        out["first_miss_verdict"] = first_miss.get("verdict")
        out["bounded"] = True
    return out
