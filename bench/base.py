"""A benchmark run's state and plumbing: fresh bodies, load, waiting for the bus to drain.

`BenchBase` holds what every phase shares (the broker, the stack, the webhook receiver,
the results); the phases are mixins on it (`bench.ceiling`, `bench.phases`), put together
by `bench.run.Bench`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import load, procs
from bench.bus import bulk_async, metric_sum, scrape
from bench.config import CORES, Sizes
from bench.generator import GeneratorProcess, GeneratorRun
from bench.helpers import CpuWindow, ReceiverProcess
from bench.texts import generate
from phoihop_embedded.broker import EmbeddedBroker
from phoihop_embedded.stack import SERVICES, Stack


def _bodies(start: int) -> Iterator[dict[str, Any]]:
    """An endless stream of distinct submission bodies."""
    block = 10_000
    for n in itertools.count():
        for g in generate(block, seed=11, start=start + n * block):
            yield g.body


class BenchBase:
    """One benchmark run: its state, and the plumbing the phases share."""

    def __init__(self, *, sizes: Sizes, phases: tuple[str, ...], database_url: str | None) -> None:
        self.sizes = sizes
        self.phases = phases
        self.database_url = database_url
        self.tmp = Path(tempfile.mkdtemp(prefix="phoihop-bench-"))
        self.broker: EmbeddedBroker | None = None
        self.ceiling_topic: str | None = None  # the ceiling's records (`kafka_ceiling`)
        self.stack: Stack | None = None
        self.receiver: ReceiverProcess | None = None
        self.results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(),
            "machine": {
                "cores": CORES,
                "python": platform.python_version(),
                "loadavg_at_start": os.getloadavg(),
            },
            "sizes": sizes.__dict__,
            "phases": list(phases),
            "errors": [],
        }
        self._body_offset = 0
        self._generator_runs = 0

    # ------------------------------------------------------------------ plumbing

    def bodies(self, count: int) -> list[dict[str, Any]]:
        """`count` fresh, never used bodies."""
        out = [g.body for g in generate(count, seed=13, start=self._body_offset)]
        self._body_offset += count
        return out

    def body_stream(self) -> Iterator[dict[str, Any]]:
        """Fresh bodies, one by one."""
        start = self._body_offset
        self._body_offset += 10_000_000  # the stream gets its own range
        return _bodies(start)

    def generator(self, url: str, api_key: str, rate: float, seconds: float) -> GeneratorProcess:
        """The open-loop generator process at `rate`/s for `seconds`, with never used texts."""
        start = self._body_offset
        self._body_offset += round(rate * seconds) + 1
        self._generator_runs += 1
        out = self.tmp / f"generator-{self._generator_runs}.tsv"
        return GeneratorProcess(url, api_key, rate, seconds, start, out)

    def generate(self, url: str, api_key: str, rate: float, seconds: float) -> GeneratorRun:
        """Run the generator to completion."""
        proc = self.generator(url, api_key, rate, seconds).start()
        try:
            return proc.wait()
        finally:
            proc.stop()

    def pids(self, *extra: tuple[str, int]) -> dict[str, int]:
        """The processes CPU is accounted for."""
        out: dict[str, int] = {"bench": os.getpid()}
        if self.broker and self.broker.process:
            out["broker"] = self.broker.process.pid
        if self.stack:
            for name, proc in self.stack.procs.items():
                if proc.process:
                    out[name] = proc.process.pid
        if self.receiver and self.receiver.process:
            out["receiver"] = self.receiver.pid
        out.update(dict(extra))
        return out

    def audit_done(self) -> float | None:
        """Events stored by audit that finish routing (assigned + merged), from /metrics.

        Summed over audit's replicas; a replica that was restarted counts from zero again.
        """
        assert self.stack is not None
        found: list[float] = []
        for proc in self.stack.replica_procs("audit"):  # each replica counts what it stored
            text = scrape(proc.url)
            for kind in ("assigned", "merged"):
                value = metric_sum(text, "phoihop_audit_events_stored_total", type=kind)
                if value is not None:
                    found.append(value)
        return sum(found) if found else None

    def quiesce(self, *, timeout: float) -> dict[str, Any]:
        """Wait until webhooks and audit stop moving for 3 s (the previous phase drained)."""
        assert self.receiver is not None
        deadline = time.monotonic() + timeout
        last: tuple[int, float | None] = (-1, None)
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            self.receiver.poll()
            now = (self.receiver.count, self.audit_done())
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= 3.0 and self.consumer_lag() < 5:
                return {"drained": True}
            time.sleep(0.5)
        return {"drained": False, "timeout_s": timeout, "lag": self.consumer_lag()}

    def consumer_lag(self) -> float:
        """Records the consumers are behind (routing, notify, audit), from their /metrics.

        Events that make no webhook (e.g. `received`) can still be queued in notify, whose
        per-case order holds an `assigned` delivery until its `received` was consumed.
        """
        assert self.stack is not None
        total = 0.0
        for name in ("routing", "notify", "audit"):
            for proc in self.stack.replica_procs(name):
                text = scrape(proc.url)
                total += metric_sum(text, f"phoihop_{name}_consumer_lag_records") or 0.0
        return total

    def wait_done(
        self, submitted: dict[str, float], *, audit_base: float | None, timeout: float
    ) -> dict[str, Any]:
        """Wait until every id got its assigned/merged webhook and audit stored as many."""
        assert self.receiver is not None
        deadline = time.monotonic() + timeout
        audit_reached: float | None = None
        n = len(submitted)
        delivered = 0
        audit_delta: float | None = None
        while time.monotonic() < deadline:
            self.receiver.poll()
            delivered = sum(1 for i in submitted if i in self.receiver.first_done)
            done = self.audit_done()
            if done is not None:
                # no base: audit had stored none of these kinds yet (its counter had no sample)
                audit_delta = done - (audit_base or 0.0)
                if audit_reached is None and audit_delta >= n:
                    audit_reached = time.time()
            audit_ok = audit_reached is not None or done is None
            if delivered >= n and audit_ok:
                break
            time.sleep(0.25)
        receipts = {
            i: self.receiver.first_done[i] for i in submitted if i in self.receiver.first_done
        }
        return {
            "delivered": delivered,
            "audit_stored": audit_delta,
            "audit_reached_at": audit_reached,
            "receipts": receipts,
            "complete": delivered >= n and (audit_reached is not None or audit_delta is None),
        }

    # ------------------------------------------------------------------ load and memory

    async def http_load(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        """Warm up, then concurrent clients back to back for a fixed time."""
        s = self.sizes
        stream = self.body_stream()
        await load.closed_loop(
            url=url, bodies=stream, headers=headers, concurrency=8, duration=5, max_requests=100
        )
        result = await load.closed_loop(
            url=url, bodies=stream, headers=headers, concurrency=s.concurrency,
            duration=s.http_seconds, max_requests=100_000,
        )  # fmt: skip
        return result.summary() | {"concurrency": s.concurrency}

    async def bulk_load(self, rows: int, *, parallel: int = 2) -> dict[str, Any]:
        """Post `rows` in chunks, `parallel` requests at a time; ids with their submit time."""
        chunk = self.sizes.chunk
        batches = [self.bodies(min(chunk, rows - i)) for i in range(0, rows, chunk)]
        submitted: dict[str, float] = {}
        statuses: dict[str, int] = {}
        errors: dict[str, int] = {}
        queue = list(batches)
        assert self.stack is not None
        url = self.stack.url("ingest")

        async def worker(client: httpx.AsyncClient) -> None:
            while queue:
                batch = queue.pop(0)
                start = time.time()
                res = await bulk_async(client, url, batch)
                statuses[str(res.status)] = statuses.get(str(res.status), 0) + 1
                for reason, count in res.errors.items():
                    errors[reason] = errors.get(reason, 0) + count
                if res.error:
                    errors[res.error] = errors.get(res.error, 0) + 1
                for rec_id in res.ids:
                    submitted[rec_id] = start

        t0 = time.perf_counter()
        async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
            await asyncio.gather(*(worker(client) for _ in range(parallel)))
        wall = time.perf_counter() - t0
        return {
            "rows": rows,
            "accepted": len(submitted),
            "wall_s": round(wall, 2),
            "rows_per_s": round(len(submitted) / wall, 1) if wall else 0.0,
            "chunk": chunk,
            "parallel_requests": parallel,
            "statuses": statuses,
            "row_errors": errors,
            "submitted": submitted,
        }

    def idle_cpu(self, seconds: float = 5.0) -> dict[str, Any]:
        """CPU each process burns with no load (polls, timers, heartbeats), on a drained bus."""
        window = CpuWindow(self.pids()).start()
        time.sleep(seconds)
        return window.stop()

    def rss(self) -> dict[str, Any]:
        """Peak (VmHWM) and current RSS of each service process tree."""
        assert self.stack is not None
        out: dict[str, Any] = {}
        for name in SERVICES:
            proc = self.stack.procs[name].process
            if proc is None:
                continue
            tree = procs.tree(proc.pid)
            out[name] = {
                "peak_mb": round(sum(p.hwm_mb for p in tree), 1),
                "current_mb": round(sum(p.rss_mb for p in tree), 1),
                "processes": [
                    {"pid": p.pid, "name": p.name, "peak_mb": round(p.hwm_mb, 1)} for p in tree
                ],
            }
        if self.broker and self.broker.process:
            b = procs.info(self.broker.process.pid)
            if b:
                out["broker"] = {"peak_mb": round(b.hwm_mb, 1), "current_mb": round(b.rss_mb, 1)}
        return out
