"""Scale-out arithmetic (pure): replicas' CPU summed per service, 1 vs 2 workers compared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phoihop_embedded.stack import SERVICES, service_of


def fold_replicas(cpu: Mapping[str, Any]) -> dict[str, Any]:
    """A CpuWindow result with each service's replicas (`routing#2`) summed into `routing`.

    `replicas` says how many processes were summed for each name that had more than one.
    """
    procs: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for name, v in (cpu.get("processes") or {}).items():
        base = service_of(name)
        entry = procs.setdefault(base, {"cpu_s": 0.0, "core_share": 0.0})
        entry["cpu_s"] = round(entry["cpu_s"] + float(v.get("cpu_s", 0.0)), 2)
        entry["core_share"] = round(entry["core_share"] + float(v.get("core_share", 0.0)), 3)
        counts[base] = counts.get(base, 0) + 1
    out = {k: v for k, v in cpu.items() if k != "processes"}
    out["processes"] = procs
    replicas = {k: n for k, n in counts.items() if n > 1}
    if replicas:
        out["replicas"] = replicas
    return out


def _ratio(new: Any, old: Any) -> float | None:
    if not isinstance(new, int | float) or not isinstance(old, int | float) or not old:
        return None
    return round(new / old, 2)


def compare(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last run (most workers) over the first: delivered rate, latency, CPU per rec.

    Ratios above 1 mean more: a delivered-rate ratio near 1 at a rate both keep up with
    says scaling out cost no throughput; the CPU ratios say what the extra processes cost.
    """
    if len(runs) < 2:
        return {}
    one, many = runs[0], runs[-1]
    cpu1, cpu2 = one.get("cpu_ms_per_rec") or {}, many.get("cpu_ms_per_rec") or {}
    names = [n for n in (*SERVICES, "services_total", "broker") if n in cpu1 or n in cpu2]
    return {
        "workers": [one.get("workers"), many.get("workers")],
        "delivered_per_s_ratio": _ratio(many.get("delivered_per_s"), one.get("delivered_per_s")),
        "p50_ratio": _ratio(many.get("p50_ms"), one.get("p50_ms")),
        "p99_ratio": _ratio(many.get("p99_ms"), one.get("p99_ms")),
        "cpu_ms_per_rec_ratio": {n: _ratio(cpu2.get(n), cpu1.get(n)) for n in names},
        "cpu_ms_per_rec_delta": {
            n: round(cpu2[n] - cpu1[n], 2) for n in names if n in cpu1 and n in cpu2
        },
        "rate_dropped": _dropped(one, many),
    }


def _dropped(one: Mapping[str, Any], many: Mapping[str, Any], *, tolerance: float = 0.9) -> bool:
    """More workers delivered fewer (below `tolerance` of the single worker's rate), or fewer
    of what was submitted."""
    r1, r2 = one.get("delivered_per_s"), many.get("delivered_per_s")
    if not isinstance(r1, int | float) or not isinstance(r2, int | float):
        return True
    incomplete = bool(one.get("complete")) and not many.get("complete")
    return r2 < tolerance * r1 or incomplete
