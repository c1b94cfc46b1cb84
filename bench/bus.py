"""Talking to a running bus: bulk import, Prometheus text, subscriptions config (bench + tests)."""

from __future__ import annotations

import base64
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.texts import jsonl
from phoihop_common.config import default_config_dir

SUBMITTER = "UBMTTQ_TINH"
SUPERVISOR = "TT_HDND"
NOTIFY_ENV = {"PHOIHOP_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8"}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def key(agency: str) -> dict[str, str]:
    """API key header of an agency (development keys)."""
    return {"X-API-Key": f"dev-{agency}"}


def new_secret() -> str:
    """A Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def copy_config(target: Path, subscriptions: list[dict[str, Any]]) -> Path:
    """A private copy of deploy/config with the given webhook subscriptions."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(default_config_dir(), target)
    (target / "subscriptions.yaml").write_text(
        yaml.safe_dump({"subscriptions": subscriptions}, allow_unicode=True), encoding="utf-8"
    )
    return target


@dataclass
class BulkResult:
    """What one bulk request returned: HTTP status, ids of imported rows, rejected rows."""

    status: int
    ids: list[str] = field(default_factory=list)
    rejected: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def parse_bulk(status: int, payload: Any) -> BulkResult:
    """Read `{accepted, rejected, results: [{row, id} | {row, error}]}`."""
    result = BulkResult(status=status)
    if not isinstance(payload, dict):
        result.error = "unexpected_body"
        return result
    for entry in payload.get("results") or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("id"):
            result.ids.append(str(entry["id"]))
        elif entry.get("error"):
            reason = str(entry["error"])
            result.errors[reason] = result.errors.get(reason, 0) + 1
    result.rejected = int(payload.get("rejected") or sum(result.errors.values()))
    if payload.get("error"):
        result.error = str(payload["error"])
    return result


def bulk_sync(
    client: httpx.Client, base_url: str, bodies: list[dict[str, Any]], *, agency: str = SUBMITTER
) -> BulkResult:
    """POST a JSON-lines batch (blocking client)."""
    try:
        resp = client.post(
            f"{base_url}/v1/recommendations/bulk",
            content=jsonl(bodies),
            headers={**key(agency), "Content-Type": "application/x-ndjson"},
        )
    except httpx.HTTPError as exc:
        return BulkResult(status=0, error=type(exc).__name__)
    return parse_bulk(resp.status_code, _json(resp))


async def bulk_async(
    client: httpx.AsyncClient,
    base_url: str,
    bodies: list[dict[str, Any]],
    *,
    agency: str = SUBMITTER,
) -> BulkResult:
    """POST a JSON-lines batch (async client)."""
    try:
        resp = await client.post(
            f"{base_url}/v1/recommendations/bulk",
            content=jsonl(bodies),
            headers={**key(agency), "Content-Type": "application/x-ndjson"},
        )
    except httpx.HTTPError as exc:
        return BulkResult(status=0, error=type(exc).__name__)
    return parse_bulk(resp.status_code, _json(resp))


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition."""
    out: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def metric_sum(text: str, name: str, **labels: str) -> float | None:
    """Sum of a metric's samples matching `labels`; None when the metric is absent."""
    found = [
        v
        for n, lab, v in parse_metrics(text)
        if n == name and all(lab.get(k) == want for k, want in labels.items())
    ]
    return sum(found) if found else None


def scrape(base_url: str, *, timeout: float = 5.0) -> str:
    """GET /metrics of a service ('' when unreachable)."""
    try:
        resp = httpx.get(f"{base_url}/metrics", timeout=timeout)
    except httpx.HTTPError:
        return ""
    return resp.text if resp.status_code == 200 else ""
