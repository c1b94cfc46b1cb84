"""Helpers of the operations tests, as fixtures: deploy/ paths, PromQL metric names, the
metrics the services' code declares, every dashboard query."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES: tuple[str, ...] = ("ingest", "routing", "notify", "audit")

# Names a query may use besides phoihop_* metrics: Prometheus's own series.
BUILTIN_SERIES = frozenset({"up"})
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan", "atan2"}
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard."""

    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def where(self) -> str:
        """Readable location for assertion messages."""
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def substitute_grafana_variables(expr: str, *, rate_interval: str = "1m") -> str:
    """A dashboard expression as Prometheus's API accepts it (Grafana variables filled)."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", rate_interval)
        .replace("$__range", "10m")
        .replace("$agency", ".+")
    )


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON under deploy/grafana/dashboards, by file stem."""
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }


def dashboard_queries() -> list[Query]:
    """Every target expression of every panel (rows' nested panels included)."""
    out: list[Query] = []
    for name, dash in load_dashboards().items():
        panels = list(dash.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                out.append(Query(name, panel.get("title", "?"), target["refId"], target["expr"]))
    return out


def dashboard_variable_queries() -> list[Query]:
    """PromQL inside the dashboards' template variables (`label_values(<expr>, label)`)."""
    out = []
    for name, dash in load_dashboards().items():
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", text)
            if m:
                out.append(Query(name, f"${var['name']}", "variable", m.group(1)))
    return out


def _sample_names(kind: str, name: str) -> set[str]:
    if kind == "Counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind in ("Histogram", "Summary"):
        return {name, *(name + s for s in (*_HISTOGRAM_SUFFIXES, "_created"))}
    return {name}


def _declared_in(code: str, svc: str) -> set[str]:
    """Metric names constructed in one module: `Counter("phoihop_...")` or `f"{p}_..."` with
    `p = "phoihop_<svc>"` assigned in the same module."""
    aliases = dict(re.findall(rf'^\s*(\w+)\s*=\s*"(phoihop_{svc})"', code, re.MULTILINE))
    names: set[str] = set()
    pattern = r'(Counter|Gauge|Histogram|Summary)\(\s*(f?)"(?:\{(\w+)\})?(\w+)"'
    for kind, is_f, alias, rest in re.findall(pattern, code):
        name = (aliases.get(alias, "") if is_f and alias else "") + rest
        if name.startswith(f"phoihop_{svc}_"):
            names |= _sample_names(kind, name)
    return names


def declared_metrics() -> dict[str, set[str]]:
    """Sample names each service's source declares, by service (absent packages: empty).

    Found by reading the code: metric constructors in `phoihop_<svc>` naming
    `phoihop_<svc>_...`, plus the standard set of `phoihop_common.metrics.ServiceMetrics`
    for a service whose code calls `ServiceMetrics.create`.
    """
    common = (ROOT / "services/common/src/phoihop_common/metrics.py").read_text()
    standard = re.findall(r'(Counter|Gauge|Histogram|Summary)\(\s*f"\{p\}_(\w+)"', common)
    assert standard, "no standard metrics found in phoihop_common/metrics.py"
    result: dict[str, set[str]] = {}
    for svc in SERVICES:
        names: set[str] = set()
        src = ROOT / "services" / svc / "src" / f"phoihop_{svc}"
        for path in sorted(src.rglob("*.py")):
            code = path.read_text(encoding="utf-8")
            names |= _declared_in(code, svc)
            if "ServiceMetrics.create(" in code:
                for kind, suffix in standard:
                    names |= _sample_names(kind, f"phoihop_{svc}_{suffix}")
        result[svc] = names
    return result


def service_written(svc: str) -> bool:
    """True once a service's package has more than its `__init__.py`."""
    src = ROOT / "services" / svc / "src" / f"phoihop_{svc}"
    return any(p.name != "__init__.py" for p in src.glob("*.py"))


@pytest.fixture
def ops() -> SimpleNamespace:
    """The helpers of this directory (test modules cannot import a conftest)."""
    return SimpleNamespace(
        root=ROOT,
        deploy=DEPLOY,
        services=SERVICES,
        builtin_series=BUILTIN_SERIES,
        promql_metric_names=promql_metric_names,
        substitute_grafana_variables=substitute_grafana_variables,
        dashboard_queries=dashboard_queries,
        dashboard_variable_queries=dashboard_variable_queries,
        declared_metrics=declared_metrics,
        service_written=service_written,
        load_dashboards=load_dashboards,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`dashboard_query`: one test per dashboard target expression."""
    if "dashboard_query" in metafunc.fixturenames:
        queries = dashboard_queries() + dashboard_variable_queries()
        metafunc.parametrize("dashboard_query", queries, ids=[q.where for q in queries])
