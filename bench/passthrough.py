"""The bare faust passthrough: one agent copying raw records from one topic to another.

The ceiling of routing's faust stages, each of which is such an agent plus its work.
`python -m bench.passthrough --broker H:P --source T --sink T2 --data-dir D` runs it as a
faust worker (faust's defaults otherwise: at-least-once, its own fetch wait and linger);
`measure` starts that worker on records already in `source` and reads `sink` until every
record came through: the rate, and the worker's CPU per record once it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import procs
from phoihop_common.kafka import KafkaSettings, client_kwargs


def build_app(*, broker: str, source: str, sink: str, data_dir: Path) -> faust.App:
    """A faust app with one agent sending every record of `source`, unchanged, to `sink`."""
    app = faust.App(
        f"bench-passthrough-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=str(data_dir),
        consumer_auto_offset_reset="earliest",
        # Tansu answers a first join after half the session: a short one starts sooner
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        web_enabled=False,
        autodiscover=False,
    )
    src = app.topic(source, key_serializer="raw", value_serializer="raw")
    out = app.topic(sink, key_serializer="raw", value_serializer="raw")

    @app.agent(src)  # type: ignore[untyped-decorator]
    async def passthrough(stream: Any) -> Any:
        async for event in stream.events():
            await out.send(key=event.key, value=event.value, headers=event.headers)
            yield None

    return app


def main(argv: list[str] | None = None) -> None:
    """Run the passthrough worker until it is stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    app = build_app(broker=args.broker, source=args.source, sink=args.sink, data_dir=args.data_dir)
    sys.argv = [sys.argv[0], "--quiet", "worker", "-l", "warn"]
    app.main()


async def measure(
    *, bootstrap: str, source: str, sink: str, records: int, data_dir: Path, log: Path
) -> dict[str, Any]:
    """Start the worker on `records` records of `source`; rate and CPU per record in `sink`.

    The clock and the CPU count start at the first record out (the worker has joined its
    group and started its agent by then), so start-up is not counted.
    """
    settings = KafkaSettings(kafka_bootstrap=bootstrap)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    cmd = [sys.executable, "-m", "bench.passthrough", "--broker", bootstrap, "--source", source]
    cmd += ["--sink", sink, "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        worker = await asyncio.create_subprocess_exec(
            *cmd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        parts = await _partitions(consumer, sink)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        got, first, cpu_first, got_first = 0, 0.0, 0.0, 0
        deadline = time.monotonic() + 300
        while got < records:
            if time.monotonic() > deadline or worker.returncode is not None:
                raise RuntimeError(f"passthrough: {got}/{records} records out (see {log})")
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            count = sum(len(v) for v in batch.values())
            if count and not first:
                first, cpu_first, got_first = time.perf_counter(), _cpu(worker), count
            got += count
        wall, cpu = time.perf_counter() - first, _cpu(worker) - cpu_first
    finally:
        worker.terminate()
        try:
            await asyncio.wait_for(worker.wait(), timeout=20)
        except TimeoutError:
            worker.kill()
            await worker.wait()
        await consumer.stop()
    counted = records - got_first
    return {
        "records": records,
        "per_s": round(counted / wall, 1) if wall > 0 else None,
        "cpu_ms_per_record": round(1000 * cpu / counted, 4) if counted else None,
    }


def _cpu(worker: asyncio.subprocess.Process) -> float:
    return procs.cpu_seconds(worker.pid, descendants=False)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of `topic` (it is created by the caller, metadata may lag)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer.force_metadata_update()  # type: ignore[no-untyped-call]
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no partitions for {topic}")


if __name__ == "__main__":
    main()
