"""The table printed at the end of a run: every figure, its ratio to the ceiling, the goals."""

from __future__ import annotations

from typing import Any

from phoihop_common.stack import SERVICES


def _ratio(value: Any, ceiling: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(ceiling, int | float) or not ceiling:
        return "-"
    return f"{value / ceiling:.3f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, ratio, ratio to what) rows."""
    out: list[tuple[str, str, str, str]] = []
    kafka = r.get("ceiling", {}).get("kafka", {})
    http = r.get("ceiling", {}).get("http", {})
    k = kafka.get("produce_consume_per_s")
    m = http.get("per_s")

    def add(name: str, value: Any, ceiling: Any = None, to: str = "") -> None:
        out.append((name, _fmt(value), _ratio(value, ceiling) if to else "-", to))

    add("ceiling: aiokafka produce→consume rec/s", k, k, "kafka")
    add("ceiling: aiokafka produce rec/s", kafka.get("produce_per_s"), k, "kafka")
    add("ceiling: aiokafka consume-only rec/s", kafka.get("consume_only_per_s"), k, "kafka")
    add("ceiling: record bytes (avg)", kafka.get("record_bytes_avg"))
    add("ceiling: minimal FastAPI+aiokafka req/s", m, m, "minimal")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add(f"ceiling: minimal endpoint {q}", http.get(q), http.get(q), "minimal " + q)
    single = r.get("ingest", {}).get("single", {})
    add("ingest: single submissions req/s", single.get("per_s"), m, "minimal")
    add("ingest: single submissions req/s vs kafka", single.get("per_s"), k, "kafka")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add(f"ingest: single {q}", single.get(q), http.get(q), "minimal " + q)
    bulk = r.get("ingest", {}).get("bulk", {})
    add("ingest: bulk rows/s", bulk.get("rows_per_s"), k, "kafka")
    e2e = r.get("e2e", {})
    fixed = e2e.get("fixed_rate", {})
    add("e2e @100/s: delivered / submitted",
        f"{fixed.get('webhook_delivered', '-')}/{fixed.get('submitted_ok', '-')}")  # fmt: skip
    add("e2e @100/s: throughput rec/s", fixed.get("throughput_per_s"), k, "kafka")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add(f"e2e @100/s: submit→webhook {q}", fixed.get(q), http.get(q), "minimal " + q)
    sat = e2e.get("saturation", {})
    add("e2e saturation: delivered / submitted",
        f"{sat.get('webhook_delivered', '-')}/{sat.get('submitted_ok', '-')}")  # fmt: skip
    add("e2e saturation: sustained rec/s (p10–p90)", sat.get("sustained_per_s"), k, "kafka")
    add("e2e saturation: overall rec/s", sat.get("throughput_per_s"), k, "kafka")
    for q in ("p50_ms", "p99_ms"):
        add(f"e2e saturation: submit→webhook {q}", sat.get(q), http.get(q), "minimal " + q)
    minimal_rss = http.get("rss_peak_mb")
    start = r.get("rss_after_start_mb") or {}
    end = r.get("rss_end_mb") or {}
    mem = r.get("memory", {})
    after = mem.get("rss_after_mb") or {}
    for name in (*SERVICES, "broker"):
        if name in start:
            add(f"rss: {name} peak MB after start", start[name]["peak_mb"], minimal_rss, "minimal")
        if name in after:
            add(f"rss: {name} peak MB with {mem.get('open_cases_loaded', 0):,} open",
                after[name]["peak_mb"], minimal_rss, "minimal")  # fmt: skip
        elif name in end:
            add(f"rss: {name} peak MB at end", end[name]["peak_mb"], minimal_rss, "minimal")
    return out


def table(r: dict[str, Any]) -> str:
    """The whole printed report."""
    body = rows(r)
    w0 = max(len(x[0]) for x in body)
    w1 = max(len(x[1]) for x in body)
    lines = [f"{'figure':<{w0}}  {'value':>{w1}}  ratio   (to)", "-" * (w0 + w1 + 24)]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c:>6}  {d}" for a, b, c, d in body]
    lines.append("")
    lines.append("goals (issue 7; reported, not asserted):")
    for g in r.get("goals", []):
        value = g["value"]
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.0f}" for k, v in value.items())
        lines.append(f"  [{g['status']:>12}] {g['goal']}: {_fmt(value)} (goal {g['target']})")
        if g.get("note"):
            lines.append(f"                 note: {g['note']}")
        if g.get("bound_by"):
            lines.append(f"                 bound by: {g['bound_by']}")
    for err in r.get("errors", []):
        lines.append(f"  error in {err['phase']}: {err['error'][:300]}")
    return "\n".join(lines)
