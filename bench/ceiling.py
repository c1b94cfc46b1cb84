"""The ceilings the services are measured against: raw Kafka, a minimal HTTP endpoint,
and ingest alone beside that endpoint."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import floor, passthrough, procs
from bench.base import BenchBase
from bench.bus import SUBMITTER, copy_config, key
from bench.config import ALONE_ROUNDS
from bench.helpers import CpuWindow, MinimalEndpoint
from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_common.net import free_port
from phoihop_embedded.stack import Stack
from phoihop_schemas.codec import encode
from phoihop_schemas.events import Received


class CeilingPhases(BenchBase):
    """Phases `ceiling` and `ingest_alone`: what the hardware and the libraries allow."""

    async def kafka_ceiling(self) -> dict[str, Any]:
        """Raw aiokafka produce → consume of received CloudEvents on the same broker."""
        assert self.broker is not None
        settings = KafkaSettings(kafka_bootstrap=self.broker.bootstrap)
        n = self.sizes.kafka_records
        topic = f"bench.ceiling.{uuid.uuid4().hex[:8]}"
        await self._create_topic(topic)
        self.ceiling_topic = topic
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

    async def faust_ceiling(self) -> dict[str, Any]:
        """A bare faust passthrough agent over the ceiling's records, in its own process."""
        assert self.broker is not None
        assert self.ceiling_topic is not None
        sink = f"{self.ceiling_topic}.out"
        await self._create_topic(sink)
        return await passthrough.measure(
            bootstrap=self.broker.bootstrap,
            source=self.ceiling_topic,
            sink=sink,
            records=self.sizes.kafka_records,
            data_dir=self.tmp / "passthrough",
            log=self.tmp / "passthrough.log",
        )

    async def durable_floor(self) -> dict[str, Any]:
        """The durable-consumer floor (`bench.floor`) over the ceiling's records."""
        assert self.broker is not None
        assert self.ceiling_topic is not None
        return await floor.measure(
            bootstrap=self.broker.bootstrap,
            topic=self.ceiling_topic,
            records=self.sizes.kafka_records,
            db_path=self.tmp / "floor.db",
        )

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
        settings = KafkaSettings(kafka_bootstrap=self.broker.bootstrap)
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, settings.kafka_topic_partitions, 1)])
        finally:
            await admin.close()

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
