"""Closed-loop HTTP load (loopback only, bounded in count and time) and latency statistics.

Open-loop load runs in its own process: `bench.generator`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Sample:
    """One request: wall-clock start, latency, status, and the id the server returned."""

    start: float
    latency: float
    status: int
    rec_id: str | None


@dataclass
class LoadResult:
    """Samples of one load run."""

    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    @property
    def ok(self) -> list[Sample]:
        """Samples answered 2xx."""
        return [s for s in self.samples if 200 <= s.status < 300]

    def summary(self) -> dict[str, Any]:
        """Throughput and latency percentiles of the 2xx answers."""
        ok = self.ok
        lat = [s.latency for s in ok]
        statuses: dict[str, int] = {}
        for s in self.samples:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        return {
            "requests": len(self.samples),
            "ok": len(ok),
            "wall_s": round(self.wall_s, 3),
            "per_s": round(len(ok) / self.wall_s, 1) if self.wall_s else 0.0,
            "statuses": statuses,
            "errors": self.errors,
            "skipped": self.skipped,
            **latency_summary(lat),
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max in milliseconds."""
    out: dict[str, float | None] = {}
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        v = percentile(seconds, q)
        out[name] = round(v * 1000, 1) if v is not None else None
    return out


def _client() -> httpx.AsyncClient:
    # One connection per client: httpcore's pool gets slow with many connections in one
    # client (its request assignment is quadratic), which would make the generator the limit.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


def _rec_id(resp: httpx.Response) -> str | None:
    if not 200 <= resp.status_code < 300:
        return None
    try:
        data = resp.json()
    except ValueError:
        return None
    return str(data.get("id")) if isinstance(data, dict) and data.get("id") else None


async def _one(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    result: LoadResult,
) -> None:
    start = time.time()
    t0 = time.perf_counter()
    try:
        resp = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        name = type(exc).__name__
        result.errors[name] = result.errors.get(name, 0) + 1
        result.samples.append(Sample(start, time.perf_counter() - t0, 0, None))
        return
    result.samples.append(Sample(start, time.perf_counter() - t0, resp.status_code, _rec_id(resp)))


async def closed_loop(
    *,
    url: str,
    bodies: Iterator[dict[str, Any]],
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    max_requests: int,
) -> LoadResult:
    """`concurrency` clients posting back to back until `duration` or `max_requests`."""
    result = LoadResult()
    counter = itertools.count()
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        async with _client() as client:
            while time.perf_counter() < deadline and next(counter) < max_requests:
                await _one(client, url, next(bodies), headers, result)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - t0
    return result
