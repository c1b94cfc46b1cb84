"""Routing's stage logic per record, without Kafka or faust: what the goal's budget must cover.

    python -m bench.routing_stages [--recommendations 2000] [--open 0] [--profile]

Runs `--recommendations` generated submissions (distinct texts, eight communes, as the load
generator sends) through routing's own `Pipeline`, stage by stage, as the live agents
would: `received` → the internal dedup record → the `route` command → the case batch that
emits `assigned`/`merged`/`duplicate_suggested`. The pipeline sends into a recording outbox
(no broker) and its tables are faust's in-memory ones, so what is timed
(`time.process_time`) is decoding, classifying, the duplicate search, the lifecycle and
encoding: the work routing adds on top of consuming and producing. `--open` first routes
that many other recommendations, so the duplicate buckets hold open cases as on a busy bus.

Prints CPU ms per recommendation per stage and per record routing consumes. Set against
the bare faust passthrough (`make bench` measures it) this bounds the goal "routing ≥ 0.5
of a passthrough per record": routing consumes each record as the passthrough does and
then does this work, so its CPU per record is at least the passthrough's plus this.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.texts import generate
from phoihop_common.logs import configure_logging
from phoihop_routing.app import create_app
from phoihop_routing.settings import Settings
from phoihop_routing.stage_base import Incoming
from phoihop_schemas import codec
from phoihop_schemas.events import Received
from phoihop_schemas.topics import CANONICAL, ROUTING_COMMANDS, ROUTING_DEDUP


@dataclass
class RecordingOutbox:
    """Keeps what the pipeline sends, acknowledged at once, for the next stage to consume."""

    sent: dict[str, list[Incoming]] = field(default_factory=dict)

    async def send(
        self, *, topic: str, key: bytes | None, value: bytes, headers: Any = ()
    ) -> asyncio.Future[None]:
        box = self.sent.setdefault(topic, [])
        box.append(Incoming(topic, 0, len(box), key, value, tuple(headers)))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def take(self, topic: str) -> list[Incoming]:
        return self.sent.pop(topic, [])


def submissions(count: int, *, start: int) -> list[Incoming]:
    """`received` records as ingest publishes them (the reporter left out: not routed on)."""
    out = []
    for i, g in enumerate(generate(count, start=start)):
        event = Received(
            recommendation_id=str(uuid.uuid4()),
            sequence=1,
            occurred_at=datetime.now(UTC),
            kind=g.body["kind"],
            channel=g.body["channel"],
            locality=g.body["locality"],
            text=g.body["text"],
            submitted_by="UBMTTQ_TINH",
        )
        rec = codec.encode(event, source="/phoihop/bench")
        out.append(
            Incoming(CANONICAL["received"].name, 0, i, rec.key, rec.value, tuple(rec.headers))
        )
    return out


@dataclass
class StageClock:
    """CPU seconds and records consumed per stage."""

    cpu: dict[str, float] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)

    async def run(
        self, stage: str, records: Sequence[Incoming], step: Callable[..., Awaitable[Any]]
    ) -> None:
        start = time.process_time()
        await step(records)
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - start
        self.consumed[stage] = self.consumed.get(stage, 0) + len(records)


async def route_all(
    records: list[Incoming], *, pipeline: Any, outbox: RecordingOutbox, clock: StageClock,
    batch: int,
) -> int:  # fmt: skip
    """Every record through the three stages, `batch` at a time; returns lifecycle events."""

    def one_by_one(handler: Callable[[Incoming], Awaitable[None]]) -> Any:
        async def step(rs: Sequence[Incoming]) -> None:
            for r in rs:
                await handler(r)

        return step

    received, dedup = one_by_one(pipeline.on_received), one_by_one(pipeline.on_dedup)
    emitted = 0
    for i in range(0, len(records), batch):
        await clock.run("received", records[i : i + batch], received)
        await clock.run("dedup", outbox.take(ROUTING_DEDUP.name), dedup)
        await clock.run("cases", outbox.take(ROUTING_COMMANDS.name), pipeline.on_cases)
        emitted += sum(len(outbox.take(t.name)) for t in CANONICAL.values())
    return emitted


async def measure(
    *, recommendations: int, open_cases: int = 0, batch: int = 50, profile: bool = False
) -> dict[str, Any]:
    """Route the recommendations; CPU ms per recommendation (per stage) and per record."""
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        store="memory://",
        data_dir=Path(tempfile.mkdtemp(prefix="routing-bench-")),
    )
    routing = create_app(settings)
    routing.app.finalize()
    routing.app.flow_control.resume()
    outbox = RecordingOutbox()
    routing.pipeline.outbox = outbox
    await route_all(
        submissions(open_cases + 40, start=1_000_000), pipeline=routing.pipeline,
        outbox=outbox, clock=StageClock(), batch=batch,
    )  # fmt: skip
    clock = StageClock()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    emitted = await route_all(
        submissions(recommendations, start=0), pipeline=routing.pipeline, outbox=outbox,
        clock=clock, batch=batch,
    )  # fmt: skip
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    if emitted < recommendations:
        raise RuntimeError(f"only {emitted} lifecycle events for {recommendations} recommendations")
    total_cpu, consumed = sum(clock.cpu.values()), sum(clock.consumed.values())
    return {
        "recommendations": recommendations,
        "open_before": open_cases,
        "cpu_ms_per_rec": round(total_cpu * 1000 / recommendations, 4),
        "cpu_ms_per_rec_by_stage": {
            s: round(c * 1000 / recommendations, 4) for s, c in clock.cpu.items()
        },
        "records_per_rec": round(consumed / recommendations, 3),
        "lifecycle_events_per_rec": round(emitted / recommendations, 3),
        "cpu_ms_per_record": round(total_cpu * 1000 / consumed, 4),
    }


async def run(*, recommendations: int, open_cases: int, batch: int, profile: bool) -> str:
    """One measurement; returns its line."""
    m = await measure(
        recommendations=recommendations, open_cases=open_cases, batch=batch, profile=profile
    )
    per_stage = ", ".join(f"{s} {v:.3f}" for s, v in m["cpu_ms_per_rec_by_stage"].items())
    return (
        f"{recommendations} recommendations, {open_cases} open before: "
        f"{m['cpu_ms_per_rec']:.3f} ms CPU per recommendation ({per_stage}); "
        f"{m['records_per_rec']:.2f} records consumed and {m['lifecycle_events_per_rec']:.2f} "
        f"lifecycle events per recommendation; {m['cpu_ms_per_record']:.3f} ms CPU per "
        f"consumed record"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure and print one line."""
    parser = argparse.ArgumentParser(prog="python -m bench.routing_stages", description=__doc__)
    parser.add_argument("--recommendations", type=int, default=2000)
    parser.add_argument("--open", type=int, default=0, help="open cases routed first")
    parser.add_argument("--batch", type=int, default=50, help="records per agent batch")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(service="routing-bench", level="WARNING")
    print(
        asyncio.run(
            run(
                recommendations=args.recommendations, open_cases=args.open, batch=args.batch,
                profile=args.profile,
            )
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
