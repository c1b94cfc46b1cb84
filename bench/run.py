"""The benchmark run: ceiling, ingest, latency ladder, profile, memory; table and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import ladder, load, procs
from bench.bus import (
    NOTIFY_ENV,
    SUBMITTER,
    SUPERVISOR,
    bulk_async,
    copy_config,
    key,
    metric_sum,
    new_secret,
    scrape,
)
from bench.generator import GeneratorProcess, GeneratorRun
from bench.helpers import CpuWindow, MinimalEndpoint, ReceiverProcess, bound_by
from bench.profile import PySpy, cpu_per_rec, end_offsets, read_speedscope, records_per_rec
from bench.texts import generate
from phoihop_common.broker import EmbeddedBroker, free_port
from phoihop_common.kafka import KafkaSettings, client_kwargs, ensure_topics, producer_kwargs
from phoihop_common.stack import SERVICES, Stack
from phoihop_schemas.codec import encode
from phoihop_schemas.events import Received

PHASES = ("ceiling", "ingest_alone", "ingest", "e2e", "memory")
# `ingest_alone`: ingest without the downstream services, back to back with the minimal
# endpoint, so the ratio compares the two HTTP processes under the same load (`ingest` runs
# it with routing, notify and audit consuming everything on the same 2 cores).
# `e2e`: the latency ladder (open-loop generator process, submit → signed webhook).
# `profile`: py-spy of every service under a steady open-loop rate (`make profile`).
# `burst`: the old saturation figure, a bulk import as fast as ingest takes it.
OPTIONAL_PHASES: tuple[str, ...] = ("profile", "burst")
ALONE_ROUNDS = 3
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CORES = os.cpu_count() or 1
GOAL_E2E_PER_S = 1000.0
GOAL_INGEST_RATIO = 0.8
GOAL_P99_MS = 1000.0  # issue 13: p99 <= 1 s at 100/s offered, every one delivered
GOAL_P99_RATE = 100.0
GOAL_KNEE_PER_S = 150.0
GOAL_CPU_MS_PER_REC = 8.0
GOAL_RSS_MB = 300.0
GOAL_OPEN_CASES = 100_000
PROFILE_SAMPLE_RATE = 100


@dataclass(frozen=True)
class Sizes:
    """How much load each phase offers."""

    kafka_records: int
    http_seconds: float
    concurrency: int
    bulk_rows: int
    saturation_rows: int
    open_cases: int
    chunk: int
    drain_timeout: float
    ladder_rates: tuple[float, ...] = (5, 10, 20, 35, 50, 75, 100, 150, 200, 300)
    ladder_seconds: float = 20.0
    stop_p99_ms: float = ladder.STOP_P99_MS
    profile_rate: float = 50.0
    profile_seconds: int = 30
    generator_check_seconds: float = 5.0


FULL = Sizes(30_000, 10.0, 32, 10_000, 20_000, GOAL_OPEN_CASES, 5_000, 900.0)
QUICK = Sizes(
    5_000, 4.0, 32, 2_000, 2_000, 5_000, 1_000, 120.0,
    ladder_rates=(10, 50, 100), ladder_seconds=6.0, profile_seconds=10,
    generator_check_seconds=3.0,
)  # fmt: skip


def _bodies(start: int) -> Iterator[dict[str, Any]]:
    """An endless stream of distinct submission bodies."""
    block = 10_000
    for n in itertools.count():
        for g in generate(block, seed=11, start=start + n * block):
            yield g.body


class Bench:
    """One benchmark run."""

    def __init__(self, *, sizes: Sizes, phases: tuple[str, ...], database_url: str | None) -> None:
        self.sizes = sizes
        self.phases = phases
        self.database_url = database_url
        self.tmp = Path(tempfile.mkdtemp(prefix="phoihop-bench-"))
        self.broker: EmbeddedBroker | None = None
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
        """Events stored by audit that finish routing (assigned + merged), from /metrics."""
        assert self.stack is not None
        text = scrape(self.stack.url("audit"))
        a = metric_sum(text, "phoihop_audit_events_stored_total", type="assigned")
        m = metric_sum(text, "phoihop_audit_events_stored_total", type="merged")
        if a is None and m is None:
            return None
        return (a or 0.0) + (m or 0.0)

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
            text = scrape(self.stack.url(name))
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
            if done is not None and audit_base is not None:
                audit_delta = done - audit_base
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

    # ------------------------------------------------------------------ phases

    async def kafka_ceiling(self) -> dict[str, Any]:
        """Raw aiokafka produce → consume of received CloudEvents on the same broker."""
        assert self.broker is not None
        settings = KafkaSettings(kafka_bootstrap=self.broker.bootstrap)
        n = self.sizes.kafka_records
        topic = f"bench.ceiling.{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, settings.kafka_topic_partitions, 1)])
        finally:
            await admin.close()
        records = [
            encode(
                Received(
                    recommendation_id=str(uuid.uuid4()), sequence=1,
                    occurred_at=datetime.now(UTC), submitted_by=SUBMITTER,
                    **{k: v for k, v in body.items() if k != "reporter"},
                ),
                source="/phoihop/bench",
            )
            # the reporter is sealed on canonical topics: plain text transport leaves it out
            for body in self.bodies(n)
        ]  # fmt: skip
        size = sum(len(r.value) + sum(len(k) + len(v) for k, v in r.headers) for r in records)

        async def consume(group: str, joined: asyncio.Event) -> tuple[float, float]:
            """Read all n records; (time of the first record, time of the last)."""
            consumer = AIOKafkaConsumer(
                topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                **client_kwargs(settings),
            )  # fmt: skip
            await consumer.start()
            try:
                got, first = 0, 0.0
                while got < n:
                    batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                    if consumer.assignment():
                        joined.set()
                    count = sum(len(v) for v in batch.values())
                    if count and not first:
                        first = time.perf_counter()
                    got += count
                return first, time.perf_counter()
            finally:
                await consumer.stop()

        joined = asyncio.Event()
        consumer_task = asyncio.create_task(consume(f"bench-{uuid.uuid4().hex[:6]}", joined))
        await asyncio.wait_for(joined.wait(), timeout=60)  # the clock starts once it is assigned
        producer = AIOKafkaProducer(**producer_kwargs(settings))
        await producer.start()
        broker_pid = self.broker.process.pid if self.broker.process else 0
        cpu0, broker0 = time.process_time(), procs.cpu_seconds(broker_pid, descendants=False)
        t0 = time.perf_counter()
        try:
            futures = [
                await producer.send(topic, value=r.value, key=r.key, headers=r.headers)
                for r in records
            ]
            await asyncio.gather(*futures)
            produced = time.perf_counter()
        finally:
            await producer.stop()
        _, consumed = await asyncio.wait_for(consumer_task, timeout=300)
        client_cpu = time.process_time() - cpu0
        broker_cpu = procs.cpu_seconds(broker_pid, descendants=False) - broker0
        first, last = await asyncio.wait_for(self._consume_only(topic, n), timeout=300)
        return {
            "records": n,
            "record_bytes_avg": round(size / n),
            "produce_per_s": round(n / (produced - t0), 1),
            "produce_consume_per_s": round(n / (consumed - t0), 1),
            "consume_only_per_s": round(n / (last - first), 1) if last > first else None,
            # producer + consumer in this process (one event loop), and the broker
            "client_cpu_ms_per_record": round(1000 * client_cpu / n, 4),
            "broker_cpu_ms_per_record": round(1000 * broker_cpu / n, 4),
        }

    async def _consume_only(self, topic: str, n: int) -> tuple[float, float]:
        """Read the topic from the beginning without a group (no join): (start, end)."""
        assert self.broker is not None
        settings = KafkaSettings(kafka_bootstrap=self.broker.bootstrap)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            t0, got = time.perf_counter(), 0
            while got < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                got += sum(len(v) for v in batch.values())
            return t0, time.perf_counter()
        finally:
            await consumer.stop()

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

    def minimal_ceiling(self) -> dict[str, Any]:
        """The minimal FastAPI + aiokafka endpoint under the client load."""
        assert self.broker is not None
        topic = f"bench.minimal.{uuid.uuid4().hex[:8]}"
        asyncio.run(self._create_topic(topic))
        endpoint = MinimalEndpoint(
            port=free_port(), bootstrap=self.broker.bootstrap, topic=topic,
            log_path=self.tmp / "minimal.log",
        ).start()  # fmt: skip
        try:
            assert endpoint.process is not None
            window = CpuWindow(self.pids(("minimal", endpoint.process.pid))).start()
            out = asyncio.run(
                self.http_load(f"{endpoint.url}/v1/recommendations", {"X-API-Key": "bench"})
            )
            out["cpu"] = window.stop()
            info = procs.tree(endpoint.process.pid)
            out["rss_peak_mb"] = round(sum(p.hwm_mb for p in info), 1)
            out["open_loop"] = self.generator_check(endpoint)
        finally:
            endpoint.stop()
        return out

    def generator_check(self, endpoint: MinimalEndpoint) -> dict[str, Any]:
        """The generator at the ladder's top rate (or the profile's) against the minimal endpoint.

        Shows the generator can offer that rate (its CPU, lateness, achieved rate) and gives
        the submit → 202 latency floor of a minimal FastAPI + aiokafka hop at that rate.
        """
        assert endpoint.process is not None
        s = self.sizes
        rate = max(s.ladder_rates) if "e2e" in self.phases else s.profile_rate
        window = CpuWindow({"minimal": endpoint.process.pid}).start()
        run = self.generate(f"{endpoint.url}/v1/recommendations", "bench", rate,
                            s.generator_check_seconds)  # fmt: skip
        cpu = window.stop()["processes"]["minimal"]
        ok = run.summary.get("ok") or 0
        return {
            "generator": run.summary,
            "minimal_core_share": cpu["core_share"],
            "minimal_cpu_ms_per_req": round(1000 * cpu["cpu_s"] / ok, 3) if ok else None,
        }

    async def _create_topic(self, topic: str) -> None:
        assert self.broker is not None
        admin = AIOKafkaAdminClient(
            **client_kwargs(KafkaSettings(kafka_bootstrap=self.broker.bootstrap))
        )
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 4, 1)])
        finally:
            await admin.close()

    def start_stack(self) -> None:
        """Receiver process, config with a jurisdiction-wide subscription, the four services."""
        assert self.broker is not None
        self.receiver = ReceiverProcess(self.tmp / "webhooks.tsv").start()
        config = copy_config(
            self.tmp / "config",
            [
                {
                    "agency": SUPERVISOR,
                    "url": self.receiver.url(f"/hook/{SUPERVISOR}"),
                    "secret": new_secret(),
                    "event_types": ["assigned", "merged"],
                    "scope": "jurisdiction",
                }
            ],
        )
        self.stack = Stack(
            data_dir=self.tmp / "stack",
            kafka_bootstrap=self.broker.bootstrap,
            database_url=self.database_url,
            config_dir=config,
            extra_env=dict(NOTIFY_ENV),
        )
        t0 = time.monotonic()
        self.stack.start(timeout=180)
        self.results["stack_start_s"] = round(time.monotonic() - t0, 1)

    def ingest_phase(self) -> dict[str, Any]:
        """Single submissions under the client load, then the bulk endpoint."""
        assert self.stack is not None
        url = self.stack.url("ingest")
        window = CpuWindow(self.pids()).start()
        single = asyncio.run(self.http_load(f"{url}/v1/recommendations", key(SUBMITTER)))
        single["cpu"] = window.stop()
        self.quiesce(timeout=self.sizes.drain_timeout)
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(self.sizes.bulk_rows))
        bulk_out = {k: v for k, v in bulk.items() if k != "submitted"}
        bulk_out["cpu"] = window.stop()
        self.quiesce(timeout=self.sizes.drain_timeout)
        return {"single": single, "bulk": bulk_out}

    def ingest_alone_phase(self) -> dict[str, Any]:
        """Only ingest on the broker; minimal endpoint and ingest alternate, round by round."""
        assert self.broker is not None
        topic = f"bench.minimal.{uuid.uuid4().hex[:8]}"
        asyncio.run(self._create_topic(topic))
        endpoint = MinimalEndpoint(
            port=free_port(), bootstrap=self.broker.bootstrap, topic=topic,
            log_path=self.tmp / "minimal-alone.log",
        )  # fmt: skip
        alone = Stack(
            data_dir=self.tmp / "ingest-alone", kafka_bootstrap=self.broker.bootstrap,
            database_url=self.database_url, config_dir=copy_config(self.tmp / "config-alone", []),
            services=("ingest",), ports={"audit": free_port()},
        )  # fmt: skip
        rounds: list[dict[str, Any]] = []
        try:
            endpoint.start()
            alone.start(timeout=120)
            ingest_proc = alone.procs["ingest"].process
            assert endpoint.process is not None
            assert ingest_proc is not None
            targets = {
                "minimal": (f"{endpoint.url}/v1/recommendations", {"X-API-Key": "bench"},
                            endpoint.process.pid),
                "ingest": (f"{alone.url('ingest')}/v1/recommendations", key(SUBMITTER),
                           ingest_proc.pid),
            }  # fmt: skip
            for _ in range(ALONE_ROUNDS):
                row: dict[str, Any] = {}
                for name, (url, headers, pid) in targets.items():
                    window = CpuWindow({"server": pid, "bench": os.getpid()}).start()
                    out = asyncio.run(self.http_load(url, headers))
                    cpu = window.stop()
                    server = cpu["processes"]["server"]
                    ok = out["ok"]
                    row[name] = {
                        "per_s": out["per_s"], "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"],
                        "statuses": out["statuses"], "core_share": server["core_share"],
                        "cpu_ms_per_req": round(1000 * server["cpu_s"] / ok, 3) if ok else None,
                        "loadavg": cpu["loadavg"][0],
                    }  # fmt: skip
                m, i = row["minimal"]["per_s"], row["ingest"]["per_s"]
                row["ratio"] = round(i / m, 3) if m else None
                rounds.append(row)
        finally:
            alone.stop()
            endpoint.stop()
        ratios = sorted(r["ratio"] for r in rounds if r["ratio"] is not None)
        return {
            "rounds": rounds,
            "ratio_median": ratios[len(ratios) // 2] if ratios else None,
            "concurrency": self.sizes.concurrency,
        }

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

    def measured_run(
        self,
        rate: float,
        seconds: float,
        *,
        spies: dict[str, PySpy] | None = None,
        idle: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One open-loop run on a drained bus: latency, CPU and broker records per recommendation.

        The generator and the receiver run in their own processes. CPU is counted from the
        first request until the last webhook and audit record (or, when delivery did not
        finish in time, until the bus drained); broker records once the bus is quiet again.
        Profilers in `spies` start when the generator's clock does.
        """
        assert self.stack is not None
        assert self.broker is not None
        assert self.receiver is not None
        s = self.sizes
        before = asyncio.run(end_offsets(self.broker.bootstrap))
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        proc = self.generator(
            f"{self.stack.url('ingest')}/v1/recommendations", key(SUBMITTER)["X-API-Key"],
            rate, seconds,
        ).start()  # fmt: skip
        profilers: dict[str, Any] = {}
        try:
            proc.sending()
            for spy in (spies or {}).values():
                spy.start()
            run = proc.wait()
            profilers = {name: spy.wait() for name, spy in (spies or {}).items()}
        finally:
            proc.stop()
            for spy in (spies or {}).values():
                spy.stop()
        done = self.wait_done(run.submitted, audit_base=base, timeout=4 * seconds + 30)
        cpu = None if not done["complete"] else window.stop()
        drained = self.quiesce(timeout=s.drain_timeout)
        receipts = dict(done["receipts"])
        if cpu is None:  # fell behind: count the work until it drained, and late receipts too
            cpu = window.stop()
            receipts.update(
                {
                    i: self.receiver.first_done[i]
                    for i in run.submitted
                    if i in self.receiver.first_done
                }
            )
        after = asyncio.run(end_offsets(self.broker.bootstrap))
        out = ladder.step_figures(
            rate=rate, seconds=seconds, submitted=run.submitted, receipts=receipts,
            generator=run.summary,
        )  # fmt: skip
        out["delivered_in_time"] = done["delivered"]
        out["audit_stored"] = done["audit_stored"]
        out["drained_after"] = drained
        out["cpu_ms_per_rec"] = cpu_per_rec(cpu, len(run.submitted), SERVICES, idle=idle)
        out["broker_records"] = records_per_rec(before, after, len(run.submitted))
        out["cpu"] = cpu
        out["generator"] = run.summary
        if profilers:
            out["profilers"] = profilers
        return out

    def e2e_phase(self) -> dict[str, Any]:
        """The latency ladder: each offered rate for a fixed window, until p99 or delivery fails."""
        assert self.stack is not None
        s = self.sizes
        out: dict[str, Any] = {"rates": list(s.ladder_rates), "step_s": s.ladder_seconds}
        # the ingest phase leaves a backlog downstream: measure the bus, not that backlog
        out["drained_before"] = self.quiesce(timeout=s.drain_timeout)
        # first requests pay for lazy set-up (connections, caches): not part of any step
        self.measured_run(min(s.ladder_rates), 3.0)
        out["idle_cpu"] = idle = self.idle_cpu()
        steps: list[dict[str, Any]] = []
        for rate in s.ladder_rates:
            step = self.measured_run(rate, s.ladder_seconds, idle=idle)
            step["verdict"] = ladder.verdict(step, stop_p99_ms=s.stop_p99_ms)
            steps.append(step)
            print(f"bench: e2e {ladder.one_line(step)}", flush=True)
            if step["verdict"] in ladder.STOPS:
                break
        out["steps"] = steps
        out["knee"] = ladder.knee(steps)
        return out

    def burst_phase(self) -> dict[str, Any]:
        """Saturation by bulk import: as fast as ingest takes it (a burst, not a steady rate)."""
        s = self.sizes
        self.quiesce(timeout=s.drain_timeout)
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(s.saturation_rows))
        submitted = bulk.pop("submitted")
        done = self.wait_done(submitted, audit_base=base, timeout=s.drain_timeout)
        out = self._e2e_figures(submitted, done) | {
            "offered": "bulk import as fast as ingest takes it",
            "bulk": bulk,
            "cpu": window.stop(),
        }
        self.quiesce(timeout=s.drain_timeout)
        return out

    def profile_phase(self) -> dict[str, Any]:
        """py-spy of every service at a steady open-loop rate; CPU and records per rec."""
        assert self.stack is not None
        s = self.sizes
        self.quiesce(timeout=s.drain_timeout)
        warm = self.measured_run(s.profile_rate, 3.0)  # first requests, lazy imports: not profiled
        idle = self.idle_cpu()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        spies: dict[str, PySpy] = {}
        for name in SERVICES:
            proc = self.stack.procs[name].process
            if proc is not None:
                spies[name] = PySpy(
                    pid=proc.pid, out_path=RESULTS_DIR / f"profile-{name}-{stamp}.json",
                    duration=s.profile_seconds, rate=PROFILE_SAMPLE_RATE,
                    log_path=self.tmp / f"py-spy-{name}.log",
                    subprocesses=len(procs.tree(proc.pid)) > 1,
                )  # fmt: skip
        # one more second of load than of profile, so every sample is under load
        step = self.measured_run(s.profile_rate, s.profile_seconds + 1, spies=spies, idle=idle)
        services: dict[str, Any] = {}
        for name, result in step.pop("profilers", {}).items():
            entry: dict[str, Any] = {"cpu_ms_per_rec": step["cpu_ms_per_rec"].get(name)}
            if result.get("ok"):
                summary = read_speedscope(Path(result["path"]))
                entry |= {
                    "speedscope": _relative(result["path"]),
                    "sampled_s": round(summary.sampled_s, 2),
                    "sampled_core_share": round(summary.sampled_s / s.profile_seconds, 3),
                    "py_spy_cpu_s": result.get("py_spy_cpu_s"),
                    "threads": summary.threads,
                    "waiting_share": round(summary.waiting_share, 3),
                    "top_own": summary.top(10),
                    "top_packages": summary.top_packages(8),
                    "top_first_party_inclusive": summary.top_inclusive(6),
                }
            else:
                entry["error"] = result.get("error")
                print(f"bench: py-spy {name}: {result.get('error')}", flush=True)
            services[name] = entry
        return {
            "rate_per_s": s.profile_rate,
            "profile_s": s.profile_seconds,
            "sample_rate_hz": PROFILE_SAMPLE_RATE,
            "warm_up": {"submitted_ok": warm["submitted_ok"], "p99_ms": warm["p99_ms"]},
            "idle_cpu": idle,
            "run": step,
            "services": services,
            "note": "latency here is under four py-spy samplers on the same cores; "
            "use the ladder for latency",
        }

    @staticmethod
    def _e2e_figures(submitted: dict[str, float], done: dict[str, Any]) -> dict[str, Any]:
        receipts: dict[str, float] = done["receipts"]
        lat = [receipts[i] - t for i, t in submitted.items() if i in receipts]
        out: dict[str, Any] = {
            "submitted_ok": len(submitted),
            "webhook_delivered": done["delivered"],
            "audit_stored": done["audit_stored"],
            "complete": done["complete"],
            **load.latency_summary(lat),
        }
        if receipts and submitted:
            first = min(submitted.values())
            ends = [max(receipts.values())]
            if done["audit_reached_at"]:
                ends.append(done["audit_reached_at"])
            span = max(ends) - first
            out["throughput_per_s"] = round(len(receipts) / span, 1) if span > 0 else None
            times = sorted(receipts.values())
            lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
            steady = (len(times) * 9) // 10 - len(times) // 10
            out["sustained_per_s"] = round(steady / (hi - lo), 1) if hi > lo else None
            out["webhooks_done_after_s"] = round(max(receipts.values()) - first, 1)
            if done["audit_reached_at"]:
                out["audit_done_after_s"] = round(done["audit_reached_at"] - first, 1)
        return out

    def memory_phase(self) -> dict[str, Any]:
        """Load N open cases by bulk import, then peak/current RSS of every service."""
        assert self.stack is not None
        s = self.sizes
        before = self.rss()
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(s.open_cases))
        submitted = bulk.pop("submitted")
        done = self.wait_done(submitted, audit_base=base, timeout=s.drain_timeout)
        cpu = window.stop()
        routing_metrics = scrape(self.stack.url("routing"))
        audit_metrics = scrape(self.stack.url("audit"))
        return {
            "open_cases_loaded": len(submitted),
            "webhook_delivered": done["delivered"],
            "audit_stored": done["audit_stored"],
            "complete": done["complete"],
            "routing_open_cases_gauge": metric_sum(routing_metrics, "phoihop_routing_open_cases"),
            "audit_open_gauge": metric_sum(audit_metrics, "phoihop_audit_recommendations_open"),
            "bulk": bulk,
            "rss_before_mb": before,
            "rss_after_mb": self.rss(),
            "cpu": cpu,
        }

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

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Every selected phase; whatever fails is recorded and the rest still runs."""
        try:
            self.broker = EmbeddedBroker(log_path=self.tmp / "broker.log").start()
            asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=self.broker.bootstrap)))
            self._step("ceiling.kafka", lambda: asyncio.run(self.kafka_ceiling()))
            self._step("ceiling.http", self.minimal_ceiling)
            if "ingest_alone" in self.phases:
                self._step("ingest_alone", self.ingest_alone_phase)
            if any(p in self.phases for p in ("ingest", "e2e", "memory", "profile", "burst")):
                self._step("stack", self.start_stack)
            if self.stack is not None:
                self.results["rss_after_start_mb"] = self.rss()
                if "ingest" in self.phases:
                    self._step("ingest", self.ingest_phase)
                if "profile" in self.phases:
                    self._step("profile", self.profile_phase)
                if "e2e" in self.phases:
                    self._step("e2e", self.e2e_phase)
                if "burst" in self.phases:
                    self._step("burst", self.burst_phase)
                if "memory" in self.phases:
                    self._step("memory", self.memory_phase)
                self.results["rss_end_mb"] = self.rss()
        finally:
            self.stop()
        self.results["finished_at"] = datetime.now(UTC).isoformat()
        self.results["goals"] = self.goals()
        return self.results

    def _step(self, name: str, fn: Callable[[], Any]) -> None:
        print(f"bench: {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # a failing phase is reported, the others still run
            self.results["errors"].append({"phase": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"bench: {name} failed: {type(exc).__name__}: {exc}", flush=True)
            return
        finally:
            print(f"bench: {name} took {time.monotonic() - t0:.1f}s", flush=True)
        if value is not None:
            target = self.results
            *parents, leaf = name.split(".")
            for p in parents:
                target = target.setdefault(p, {})
            target[leaf] = value

    def stop(self) -> None:
        """Stop everything the run started."""
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.stack.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.results["errors"]:
            self.results["logs"] = str(self.tmp)  # kept for reading
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ goals

    def goals(self) -> list[dict[str, Any]]:
        """The issue's goals beside the figures: met / missed / not measured, never asserted."""
        r = self.results
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
            self.sizes.ladder_rates
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
        cpu_value, cpu_note = self._cpu_per_rec_figure(steps)
        add("total service CPU per recommendation", cpu_value,
            f"<= {GOAL_CPU_MS_PER_REC:g} ms", None if cpu_value is None else
            cpu_value <= GOAL_CPU_MS_PER_REC, None, note=cpu_note)  # fmt: skip
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
        note = (
            "" if loaded >= GOAL_OPEN_CASES else f"measured with {loaded} open cases, not 100,000"
        )
        add("peak RSS per service with open cases", peaks or None, f"<= {GOAL_RSS_MB:.0f} MB",
            None if worst is None else worst <= GOAL_RSS_MB, mem.get("cpu"), note)  # fmt: skip
        return goals

    def _cpu_per_rec_figure(self, steps: list[dict[str, Any]]) -> tuple[float | None, str]:
        """Total service CPU per recommendation: the profile run, else the knee's ladder step."""
        run = self.results.get("profile", {}).get("run")
        if run:
            rate = self.results["profile"]["rate_per_s"]
            return run["cpu_ms_per_rec"]["services_total"], f"profile run at {rate:g}/s"
        ok = [x for x in steps if x.get("verdict") == "ok"] or steps
        if not ok:
            return None, ""
        step = max(ok, key=lambda x: x["offered_per_s"])
        return (
            step["cpu_ms_per_rec"]["services_total"],
            f"ladder step at {step['offered_per_s']:g}/s",
        )


def _relative(path: str) -> str:
    """A path relative to the repository when it is inside it."""
    p = Path(path)
    root = RESULTS_DIR.parents[1]
    return str(p.relative_to(root)) if p.is_relative_to(root) else path


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


def write(results: dict[str, Any]) -> Path:
    """`bench/results/<timestamp>.json` and `latest.json`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    text = json.dumps(results, ensure_ascii=False, indent=2, default=str)
    path.write_text(text, encoding="utf-8")
    (RESULTS_DIR / "latest.json").write_text(text, encoding="utf-8")
    return path
