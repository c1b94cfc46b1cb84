"""The table printed at the end of a run: every figure, its ratio to the ceiling, the goals."""

from __future__ import annotations

import os
from typing import Any

from phoihop_embedded.stack import SERVICES

CORES = os.cpu_count() or 1


def _ratio(value: Any, ceiling: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(ceiling, int | float) or not ceiling:
        return "-"
    return f"{value / ceiling:.3f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value and abs(value) < 1:
            return f"{value:.2g}"
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
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
    add("ceiling: aiokafka client CPU ms/record", kafka.get("client_cpu_ms_per_record"))
    add("ceiling: broker CPU ms/record (aiokafka)", kafka.get("broker_cpu_ms_per_record"))
    floor = r.get("ceiling", {}).get("floor", {})
    add("ceiling: durable consumer floor rec/s", floor.get("per_s"), k, "kafka")
    add("ceiling: durable floor CPU ms/record", floor.get("cpu_ms_per_record"),
        kafka.get("client_cpu_ms_per_record"), "kafka CPU")  # fmt: skip
    passthrough = r.get("ceiling", {}).get("faust", {})
    add("ceiling: bare faust passthrough rec/s", passthrough.get("per_s"), k, "kafka")
    add("ceiling: faust passthrough CPU ms/record", passthrough.get("cpu_ms_per_record"))
    bounds = r.get("ceiling", {}).get("bounds", {})
    add("bound: routing stage logic CPU ms/record",
        (bounds.get("routing_stages") or {}).get("cpu_ms_per_record"),
        passthrough.get("cpu_ms_per_record"), "faust CPU")  # fmt: skip
    add("bound: audit handler CPU ms/event",
        (bounds.get("audit_handler") or {}).get("cpu_ms_per_event"),
        kafka.get("client_cpu_ms_per_record"), "kafka CPU")  # fmt: skip
    add("bound: signed webhook CPU ms/delivery",
        (bounds.get("webhook") or {}).get("cpu_ms_per_delivery"),
        kafka.get("client_cpu_ms_per_record"), "kafka CPU")  # fmt: skip
    add("ceiling: minimal FastAPI+aiokafka req/s", m, m, "minimal")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add(f"ceiling: minimal endpoint {q}", http.get(q), http.get(q), "minimal " + q)
    gen = (http.get("open_loop") or {}).get("generator") or {}
    if gen:
        rate = gen.get("offered_per_s")
        add(f"generator check @{rate:g}/s on minimal: sent/s", gen.get("achieved_per_s"), rate,
            "offered")  # fmt: skip
        add(f"generator check @{rate:g}/s: generator core share", gen.get("core_share"))
        add(f"generator check @{rate:g}/s: send lateness p99 ms",
            (gen.get("send_late_ms") or {}).get("p99_ms"))  # fmt: skip
        for q in ("p50_ms", "p99_ms"):
            add(f"generator check @{rate:g}/s: submit→202 {q}", (gen.get("answer_ms") or {}).get(q))
        add(f"generator check @{rate:g}/s: lag", ", ".join(gen.get("lag") or []) or "none")
    single = r.get("ingest", {}).get("single", {})
    add("ingest: single submissions req/s", single.get("per_s"), m, "minimal")
    add("ingest: single submissions req/s vs kafka", single.get("per_s"), k, "kafka")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        add(f"ingest: single {q}", single.get(q), http.get(q), "minimal " + q)
    bulk = r.get("ingest", {}).get("bulk", {})
    add("ingest: bulk rows/s", bulk.get("rows_per_s"), k, "kafka")
    sat = r.get("burst", {})
    got = f"{sat.get('webhook_delivered', '-')}/{sat.get('submitted_ok', '-')}" if sat else None
    add("burst: delivered / submitted", got)
    add("burst: sustained rec/s (p10–p90)", sat.get("sustained_per_s"), k, "kafka")
    add("burst: overall rec/s", sat.get("throughput_per_s"), k, "kafka")
    for q in ("p50_ms", "p99_ms"):
        add(f"burst: submit→webhook {q}", sat.get(q), http.get(q), "minimal " + q)
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


def _ms(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:,.0f}"


def _x(value: Any, ceiling: Any) -> str:
    """`value` as a multiple of a ceiling figure."""
    if not isinstance(value, int | float) or not isinstance(ceiling, int | float) or not ceiling:
        return "-"
    ratio = value / ceiling
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:,.1f}×" if ratio >= 1 else f"{ratio:.3f}"


def _grid(header: list[str], body: list[list[str]], *, left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned."""
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.ljust(widths[c]) if c < left else cell.rjust(widths[c])
            for c, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    return [line(header), "-" * len(line(header)), *(line(row) for row in body)]


def ladder_lines(r: dict[str, Any]) -> list[str]:
    """The latency ladder: one row per offered rate, the knee, CPU per service."""
    e2e = r.get("e2e", {})
    steps: list[dict[str, Any]] = e2e.get("steps") or []
    if not steps:
        return []
    kafka = r.get("ceiling", {}).get("kafka", {})
    http = r.get("ceiling", {}).get("http", {})
    floor = ((http.get("open_loop") or {}).get("generator") or {}).get("answer_ms") or {}
    k_rate, m_rate = kafka.get("produce_consume_per_s"), http.get("per_s")
    k_cpu = None
    if kafka.get("client_cpu_ms_per_record") is not None:
        k_cpu = kafka["client_cpu_ms_per_record"] + (kafka.get("broker_cpu_ms_per_record") or 0)
    lines = [
        "",
        f"latency ladder: open-loop generator process → ingest → routing → notify → signed "
        f"webhook (receiver process), {e2e.get('step_s', 0):g} s per rate, latency from the "
        "scheduled send time",
    ]
    header = [
        "offered", "sent/s", "gen CPU", "delivered", "p50 ms", "p95 ms", "p99 ms", "p99×min",
        "2nd half/s", "CPU ms/rec", "above idle", "CPU×kafka", "records/rec", "load", "verdict",
    ]  # fmt: skip
    body: list[list[str]] = []
    for x in steps:
        cpu = (x.get("cpu_ms_per_rec") or {}).get("services_total")
        marginal = ((x.get("cpu_ms_per_rec") or {}).get("above_idle") or {}).get("services_total")
        half = (x.get("second_half") or {}).get("delivered_per_s")
        share = x.get("generator_core_share")
        verdict = x.get("verdict", "?")
        if x.get("generator_lag"):
            verdict += " (" + "; ".join(x["generator_lag"]) + ")"
        body.append([
            f"{x['offered_per_s']:g}/s", _fmt(x.get("generator_per_s")),
            "-" if share is None else f"{share:.0%}",
            f"{x.get('delivered', 0)}/{x.get('submitted_ok', 0)}",
            _ms(x.get("p50_ms")), _ms(x.get("p95_ms")), _ms(x.get("p99_ms")),
            _x(x.get("p99_ms"), floor.get("p99_ms")), _fmt(half), _fmt(cpu), _fmt(marginal),
            _x(cpu, k_cpu),
            _fmt((x.get("broker_records") or {}).get("per_rec")),
            _fmt(((x.get("cpu") or {}).get("loadavg") or [None])[0]), verdict,
        ])  # fmt: skip
    lines += _grid(header, body)
    busy = [x for x in steps if (((x.get("cpu") or {}).get("loadavg") or [0])[0] or 0) >= CORES]
    if busy:
        lines.append(
            f"warning: load average >= {CORES} (the cores) during {len(busy)} of {len(steps)} "
            "steps: other work shared the CPUs, so latency and knee are pessimistic and noisy"
        )
    knee = e2e.get("knee") or {}
    rate = knee.get("rate_per_s")
    if rate is None:
        lines.append("knee: none — even the lowest rate missed p99 <= 1 s (or was not delivered)")
    else:
        bound = "" if knee.get("bounded") else " (or higher: every rate tried met it)"
        lines.append(
            f"knee (highest rate with p99 <= 1 s, all delivered): {rate:g}/s{bound} = "
            f"{_ratio(rate, k_rate)} of aiokafka produce→consume ({_fmt(k_rate)} rec/s), "
            f"{_ratio(rate, m_rate)} of the minimal endpoint ({_fmt(m_rate)} req/s)"
        )
    lines += [
        f"  p99×min: over the minimal FastAPI+aiokafka endpoint's submit→202 p99 at the top "
        f"rate ({_fmt(floor.get('p99_ms'))} ms, same generator)",
        "  CPU ms/rec: ingest+routing+notify+audit CPU from first request to last webhook / "
        "recommendations; above idle: less each process's CPU with no load",
        f"  CPU×kafka: CPU ms/rec over aiokafka produce+consume+broker CPU per record "
        f"({_fmt(k_cpu)} ms); 2nd half/s: webhooks delivered per second in the window's "
        "second half (below the sent rate: delivery falls behind)",
        f"  load: 1-min load average at the step's end ({CORES} cores; above that, other work "
        "on the machine competes for them)",
    ]
    names = [
        n for n in (*SERVICES, "broker") if any(n in (x.get("cpu_ms_per_rec") or {}) for x in steps)
    ]
    header = ["offered", *names, "services"]
    body = []
    for x in steps:
        cpu = x.get("cpu_ms_per_rec") or {}
        body.append([f"{x['offered_per_s']:g}/s", *(_fmt(cpu.get(n)) for n in names),
                     _fmt(cpu.get("services_total"))])  # fmt: skip
        above = cpu.get("above_idle") or {}
        if above:
            body.append(["  above idle", *(_fmt(above.get(n)) for n in names),
                         _fmt(above.get("services_total"))])  # fmt: skip
    idle = (e2e.get("idle_cpu") or {}).get("processes") or {}
    if idle:
        shares = [idle.get(n, {}).get("core_share") for n in names]
        body.append(["idle % core", *("-" if v is None else f"{v:.1%}" for v in shares), ""])
    lines += [
        "",
        "CPU ms per recommendation, per process tree (broker: Tansu)",
        *_grid(header, body),
    ]
    return lines


def profile_lines(r: dict[str, Any]) -> list[str]:
    """The profile run: CPU and broker records per recommendation, top frames per service."""
    prof = r.get("profile")
    if not prof:
        return []
    run = prof.get("run", {})
    cpu = run.get("cpu_ms_per_rec") or {}
    rec = run.get("broker_records") or {}
    n = run.get("submitted_ok", 0)
    lines = [
        "",
        f"profile: {prof['rate_per_s']:g}/s open loop for {prof['profile_s']} s, py-spy "
        f"{prof['sample_rate_hz']} Hz on every service; {run.get('delivered')}/{n} delivered, "
        f"p50/p99 {_ms(run.get('p50_ms'))}/{_ms(run.get('p99_ms'))} ms (under the profilers)",
    ]
    header = ["process", "CPU ms/rec", "above idle", "core share", "idle share",
              "py-spy sampled s", "py-spy CPU s", "speedscope file"]  # fmt: skip
    body = []
    procs = (run.get("cpu") or {}).get("processes", {})
    idle = (prof.get("idle_cpu") or {}).get("processes", {})
    above = cpu.get("above_idle") or {}
    for name in (*SERVICES, "broker"):
        if name not in cpu:
            continue
        entry = prof.get("services", {}).get(name, {})
        body.append([
            name, _fmt(cpu[name]), _fmt(above.get(name)),
            _fmt(procs.get(name, {}).get("core_share")), _fmt(idle.get(name, {}).get("core_share")),
            _fmt(entry.get("sampled_s")), _fmt(entry.get("py_spy_cpu_s")),
            entry.get("speedscope") or ("-" if name == "broker" else f"none: {entry.get('error')}"),
        ])  # fmt: skip
    body.append(["services total", _fmt(cpu.get("services_total")),
                 _fmt(above.get("services_total")), "", "", "", "", ""])  # fmt: skip
    lines += _grid(header, body)
    kinds = ", ".join(f"{k} {v:g}" for k, v in (rec.get("by_kind") or {}).items())
    lines.append(
        f"broker records per recommendation: {_fmt(rec.get('per_rec'))} "
        f"({rec.get('records', 0):,} records / {rec.get('recommendations', 0):,}): {kinds}"
    )
    for topic, v in (rec.get("by_topic") or {}).items():
        lines.append(f"  {v:>6g}  {topic}")
    lines.append(
        "top frames: share of py-spy samples, and that share of the service's CPU ms/rec; "
        "'wait' = a leaf where a thread polls or waits (py-spy counts runnable threads, so on "
        "a busy machine these collect samples too)"
    )
    for name, entry in prof.get("services", {}).items():
        if not entry.get("top_own"):
            continue
        ms = cpu.get(name)
        pkgs = ", ".join(f"{p['package']} {p['share']:.0%}" for p in entry["top_packages"])
        lines.append(f"{name}: own time by package: {pkgs}")
        for f in entry["top_own"]:
            est = f"{f['share'] * ms:5.2f} ms" if isinstance(ms, int | float) else "   - ms"
            wait = "  (wait)" if f.get("wait") else ""
            lines.append(f"  {f['share']:>6.1%}  {est}  {f['function']}{wait}")
        ours = entry.get("top_first_party_inclusive") or []
        if ours:
            lines.append(f"  {name}'s own code, inclusive (itself and what it calls):")
            for f in ours:
                est = f"{f['share'] * ms:5.2f} ms" if isinstance(ms, int | float) else "   - ms"
                lines.append(f"  {f['share']:>6.1%}  {est}  {f['function']}")
    return lines


def scale_lines(r: dict[str, Any]) -> list[str]:
    """Phase `scale`: the same rate with 1 and 2 processes of routing, notify and audit."""
    scale = r.get("scale")
    if not scale or not scale.get("runs"):
        return []
    runs: list[dict[str, Any]] = scale["runs"]
    names = [n for n in (*SERVICES, "broker") if any(n in (x.get("cpu_ms_per_rec") or {})
             for x in runs)]  # fmt: skip
    lines = [
        "",
        f"scale-out: {scale['rate_per_s']:g}/s open loop for {scale['seconds']:g} s with N "
        f"processes each of {', '.join(scale.get('scaled_services', []))} (ingest: 1), "
        f"{CORES} cores; CPU ms per recommendation summed over a service's replicas",
    ]
    header = ["workers", "delivered", "delivered/s", "2nd half/s", "p50 ms", "p99 ms",
              *(f"{n} CPU" for n in names), "services CPU", "above idle", "verdict"]  # fmt: skip
    body: list[list[str]] = []
    for x in runs:
        cpu = x.get("cpu_ms_per_rec") or {}
        above = (cpu.get("above_idle") or {}).get("services_total")
        half = (x.get("second_half") or {}).get("delivered_per_s")
        body.append([
            str(x.get("workers")), f"{x.get('delivered', 0)}/{x.get('submitted_ok', 0)}",
            _fmt(x.get("delivered_per_s")), _fmt(half),
            _ms(x.get("p50_ms")), _ms(x.get("p99_ms")), *(_fmt(cpu.get(n)) for n in names),
            _fmt(cpu.get("services_total")), _fmt(above), str(x.get("verdict", "?")),
        ])  # fmt: skip
    lines += _grid(header, body)
    c = scale.get("comparison") or {}
    if c:
        ratios = c.get("cpu_ms_per_rec_ratio") or {}
        cpu = ", ".join(f"{n} ×{v:g}" for n, v in ratios.items() if v is not None)
        dropped = "DROPPED" if c.get("rate_dropped") else "did not drop"
        lines.append(
            f"{c['workers'][1]} vs {c['workers'][0]} workers: delivered rate "
            f"×{_fmt(c.get('delivered_per_s_ratio'))} ({dropped}), p50 ×{_fmt(c.get('p50_ratio'))}"
            f", p99 ×{_fmt(c.get('p99_ratio'))}; CPU per recommendation {cpu}"
        )
    return lines


def table(r: dict[str, Any]) -> str:
    """The whole printed report."""
    body = [row for row in rows(r) if row[1] != "-"]
    w0 = max(len(x[0]) for x in body)
    w1 = max(len(x[1]) for x in body)
    lines = [f"{'figure':<{w0}}  {'value':>{w1}}  ratio   (to)", "-" * (w0 + w1 + 24)]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c:>6}  {d}" for a, b, c, d in body]
    lines += ladder_lines(r)
    lines += profile_lines(r)
    lines += scale_lines(r)
    lines.append("")
    lines.append("goals (issues 7 and 13; reported, not asserted):")
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
