"""What every routing stage shares: records, the outbox, metrics, health and the poison policy.

One record never stalls an agent (the consumer kit's policy, for faust): each record of
every stage runs inside `Plumbing.guarded`. Any exception it raises (not only the known
rejections) is caught; broker trouble is retried `record_attempts` times in process, and
then, or for anything else, that record alone is dead-lettered (`internal_error`,
`invalid_text` for text that cannot be encoded) with the exception in `dlq_detail`, and its
neighbours proceed. A batch whose acknowledgements fail (`Plumbing.acks_failed`)
dead-letters the records the broker refused for good (`produce_failed`, as the record they
came from: `origin_of`) or, when acknowledgements only failed to arrive, marks the stage
retrying (readiness: `StageHealth.problem`) and backs off before the caller re-runs it.
Dead letters go through `phoihop_common.dlq.dead_letter_message`, which summarises oversized
values, and a dead letter that cannot be sent is logged and counted, never raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    NodeNotReadyError,
)
from prometheus_client import Counter, Gauge

from phoihop_common.dlq import dead_letter_message
from phoihop_common.logs import get_logger
from phoihop_common.metrics import ServiceMetrics
from phoihop_routing import internal
from phoihop_schemas.topics import DEAD_LETTER, ROUTING_COMMANDS

SOURCE = "/phoihop/routing"
SERVICE = "routing"
log = get_logger("phoihop_routing.agents")  # the stages log as they always did

# Stages (the `stage` label of the error metrics) and the faust agent that runs each.
STAGE_RECEIVED = "received"
STAGE_DEDUP = "dedup"
STAGE_RESPONSES = "responses"
STAGE_CASES = "cases"
AGENT_NAMES: dict[str, str] = {
    STAGE_RECEIVED: "routing-received",
    STAGE_DEDUP: "routing-dedup",
    STAGE_RESPONSES: "routing-responses",
    STAGE_CASES: "routing-cases",
}

# Where a response forwarded by stage R was read (stage 3 dead-letters it as that record).
ORIGIN_PREFIX = "phoihop_origin_"
ORIGIN_TOPIC = f"{ORIGIN_PREFIX}topic"
ORIGIN_PARTITION = f"{ORIGIN_PREFIX}partition"
ORIGIN_OFFSET = f"{ORIGIN_PREFIX}offset"

# Broker trouble: the same work may succeed if tried again (the consumer kit's list).
TRANSIENT: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    NodeNotReadyError,
    ConnectionError,
    TimeoutError,
    asyncio.CancelledError,  # an acknowledgement cancelled under us (producer restarting)
)


def is_transient(exc: BaseException) -> bool:
    """True for failures of the broker rather than of the record (worth another attempt)."""
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def failure_reason(exc: BaseException) -> str:
    """Dead-letter reason of an unexpected exception raised while processing a record."""
    if isinstance(exc, UnicodeError):
        return "invalid_text"  # e.g. a lone surrogate that no UTF-8 encoder accepts
    return "internal_error"


# --------------------------------------------------------------------------- records


class Outbox(Protocol):
    """Where the agents send records; `send` returns an awaitable broker acknowledgement."""

    async def send(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Incoming:
    """One consumed record, whatever the consumer."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, message: Any) -> Incoming:
        """From a faust Message."""
        raw = message.headers or ()
        items = raw.items() if isinstance(raw, Mapping) else raw
        headers = tuple((str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in items)
        value = message.value
        if isinstance(value, str):
            value = value.encode()
        key = message.key
        if isinstance(key, str):
            key = key.encode()
        return cls(
            topic=str(message.topic),
            partition=int(message.partition or 0),
            offset=int(message.offset or 0),
            key=key,
            value=value,
            headers=headers,
        )

    def header(self, name: str) -> bytes | None:
        """First header called `name`."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


def forward_headers(record: Incoming) -> list[tuple[str, bytes]]:
    """Headers of a response forwarded by stage R: its own, then where it was read.

    Origin headers the record already carries (an agency could send any) are dropped first.
    """
    own = [(k, v) for k, v in record.headers if not k.startswith(ORIGIN_PREFIX)]
    return [
        *own,
        (ORIGIN_TOPIC, record.topic.encode()),
        (ORIGIN_PARTITION, str(record.partition).encode()),
        (ORIGIN_OFFSET, str(record.offset).encode()),
    ]


def origin_of(record: Incoming) -> Incoming:
    """The record as it was read before stage R forwarded it (itself if not forwarded).

    Trusted only on ROUTING_COMMANDS, which only routing writes: a dead letter of a
    forwarded response names the inbound topic, partition and offset, with its headers.
    """
    if record.topic != ROUTING_COMMANDS.name:
        return record
    topic = record.header(ORIGIN_TOPIC)
    partition = record.header(ORIGIN_PARTITION)
    offset = record.header(ORIGIN_OFFSET)
    if topic is None or partition is None or offset is None:
        return record
    try:
        where = (topic.decode(), int(partition), int(offset))
    except ValueError:  # UnicodeDecodeError included: not what stage R writes
        return record
    return dataclasses.replace(
        record,
        topic=where[0],
        partition=where[1],
        offset=where[2],
        headers=tuple((k, v) for k, v in record.headers if not k.startswith(ORIGIN_PREFIX)),
    )


async def settle_acks(acks: Sequence[tuple[int, Any]]) -> dict[int, BaseException]:
    """Await (record index, acknowledgement) pairs; the first failure of each record."""
    if not acks:
        return {}
    results = await asyncio.gather(*(ack for _, ack in acks), return_exceptions=True)
    failed: dict[int, BaseException] = {}
    for (index, _), result in zip(acks, results, strict=True):
        if isinstance(result, BaseException):
            failed.setdefault(index, result)
    return failed


def put_partitioned(table: Any, key: str, value: Any, *, partition: int) -> None:
    """Write a table entry to the changelog partition given (`tables.PartitionedTable`)."""
    put = getattr(table, "put", None)
    if put is not None:
        put(key, value, partition=partition)
    else:
        table[key] = value


def remove_partitioned(table: Any, key: str, *, partition: int) -> None:
    """Delete a table entry, logged to the changelog partition given."""
    remove = getattr(table, "remove", None)
    if remove is not None:
        remove(key, partition=partition)
    else:
        table.pop(key, None)


# --------------------------------------------------------------------------- metrics, health


@dataclass(frozen=True)
class RoutingMetrics:
    """Standard service metrics plus routing's own (names from contracts.md)."""

    service: ServiceMetrics
    assignments: Counter
    merged: Counter
    triaged: Counter
    escalations: Counter
    reminders: Counter
    open_cases: Gauge
    agent_errors: Counter
    dead_letter_failures: Counter

    @classmethod
    def create(cls) -> RoutingMetrics:
        """Register the metrics (once per process: see `routing_metrics`)."""
        p = "phoihop_routing"
        return cls(
            service=ServiceMetrics.create(SERVICE),
            assignments=Counter(f"{p}_assignments_total", "Assignments by agency", ["agency"]),
            merged=Counter(f"{p}_merged_total", "Recommendations merged into an open case"),
            triaged=Counter(f"{p}_triaged_total", "Recommendations sent to triage"),
            escalations=Counter(f"{p}_escalations_total", "Escalations by level", ["level"]),
            reminders=Counter(f"{p}_reminders_total", "Reminders before a deadline"),
            open_cases=Gauge(f"{p}_open_cases", "Open cases on this worker's partitions"),
            agent_errors=Counter(
                f"{p}_agent_errors_total",
                "Unexpected failures caught in an agent (record, acknowledgement or crash)",
                ["stage"],
            ),
            dead_letter_failures=Counter(
                f"{p}_dead_letter_failures_total",
                "Dead letters that could not be sent (logged; the agent went on)",
                ["topic"],
            ),
        )


_METRICS: list[RoutingMetrics] = []


def routing_metrics() -> RoutingMetrics:
    """The process-wide metrics (prometheus refuses to register a name twice)."""
    if not _METRICS:
        _METRICS.append(RoutingMetrics.create())
    return _METRICS[0]


@dataclass
class StageHealth:
    """What readiness knows about one stage: last error, a batch being retried, a crash."""

    last_error: str = ""
    errors: int = 0
    retrying_since: float | None = None
    crashed_at: float | None = None
    crash: str = ""

    def problem(self, *, now: float, stuck_after: float, crash_window: float) -> str | None:
        """None when healthy, else why the stage's agent counts as stuck."""
        if self.retrying_since is not None and now - self.retrying_since > stuck_after:
            waited = now - self.retrying_since
            return f"retrying one batch for {waited:.0f} s: {self.last_error}"
        if self.crashed_at is not None and now - self.crashed_at < crash_window:
            return f"agent crashed {now - self.crashed_at:.0f} s ago: {self.crash}"
        return None


# --------------------------------------------------------------------------- plumbing


@dataclass
class Plumbing:
    """The outbox, metrics, health and poison policy the stages share (one per pipeline)."""

    outbox: Outbox
    metrics: RoutingMetrics
    # the poison policy: attempts at one record when the broker fails, backoff, thresholds
    record_attempts: int = 3
    retry_backoff: float = 0.2
    retry_backoff_max: float = 5.0
    ack_timeout: float = 30.0
    stuck_after: float = 30.0
    crash_window: float = 60.0
    health: dict[str, StageHealth] = field(
        default_factory=lambda: {stage: StageHealth() for stage in AGENT_NAMES}
    )

    def __post_init__(self) -> None:
        for stage, name in AGENT_NAMES.items():
            health = self.health.setdefault(stage, StageHealth())
            self.metrics.service.consumer_stuck.labels(name).set_function(
                functools.partial(self._stuck_value, health)
            )

    def _stuck_value(self, health: StageHealth) -> float:
        return 0.0 if self._stage_problem(health) is None else 1.0

    # ---------------------------------------------------------------- health

    def _stage_problem(self, health: StageHealth) -> str | None:
        return health.problem(
            now=time.monotonic(), stuck_after=self.stuck_after, crash_window=self.crash_window
        )

    def problem(self) -> str | None:
        """Why readiness should fail (a stage stuck or recently crashed), or None."""
        for stage, health in self.health.items():
            problem = self._stage_problem(health)
            if problem is not None:
                return f"{AGENT_NAMES.get(stage, stage)}: {problem}"
        return None

    def record_error(self, stage: str, exc: BaseException) -> None:
        """Count an unexpected failure of a stage and keep it as the stage's last error."""
        health = self.health.setdefault(stage, StageHealth())
        health.last_error = f"{type(exc).__name__}: {exc}"[:300]
        health.errors += 1
        self.metrics.agent_errors.labels(stage).inc()

    def record_crash(self, stage: str, exc: BaseException) -> None:
        """An exception escaped an agent's body (faust restarts it; readiness says so)."""
        self.record_error(stage, exc)
        health = self.health[stage]
        health.crashed_at = time.monotonic()
        health.crash = health.last_error
        log.error("agent_crashed", stage=stage, error=health.last_error, exc_info=exc)

    def processed(self, record: Incoming, *, started: float | None = None) -> None:
        """Count a record processed (and how long it took, when `started` is given)."""
        self.metrics.service.consumed.labels(record.topic, "ok").inc()
        if started is not None:
            elapsed = time.perf_counter() - started
            self.metrics.service.processing.labels(record.topic).observe(elapsed)

    # ---------------------------------------------------------------- dead letters

    async def dead_letter(self, record: Incoming, *, reason: str, detail: str) -> bool:
        """Send the record (or its summary) with `dlq_*` headers to the dead-letter topic.

        Never raises: a dead letter the broker does not take (after `record_attempts` tries
        when the failure looks transient) is logged and counted, and False is returned.
        """
        message = dead_letter_message(
            reason=reason,
            detail=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            service=SERVICE,
            key=record.key,
            value=record.value,
            headers=record.headers,
        )
        for attempt in range(1, self.record_attempts + 1):
            try:
                ack = await self.outbox.send(
                    topic=DEAD_LETTER.name,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                )
                # shielded: faust's future must not be cancelled under its producer
                await asyncio.wait_for(asyncio.shield(ack), self.ack_timeout)
            except Exception as exc:
                if is_transient(exc) and attempt < self.record_attempts:
                    await asyncio.sleep(self.backoff(attempt))
                    continue
                self.metrics.dead_letter_failures.labels(record.topic).inc()
                log.error(
                    "dead_letter_failed",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
                return False
            break
        self.metrics.service.dead_lettered.labels(record.topic, reason).inc()
        self.metrics.service.consumed.labels(record.topic, "dead_lettered").inc()
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            detail=detail[:300],
        )
        return True

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1` (exponential, capped)."""
        return float(min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1)))

    async def guarded(
        self, stage: str, record: Incoming, work: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Run one record's processing: True if processed, False if dead-lettered.

        Whatever `work` raises stays here: broker trouble is retried `record_attempts`
        times, anything else (or still failing) dead-letters this record alone.
        """
        for attempt in range(1, self.record_attempts + 1):
            try:
                return await work()
            except Exception as exc:
                self.record_error(stage, exc)
                if is_transient(exc) and attempt < self.record_attempts:
                    name = AGENT_NAMES.get(stage, stage)
                    self.metrics.service.consumer_retries.labels(name, "record").inc()
                    await asyncio.sleep(self.backoff(attempt))
                    continue
                log.error(
                    "record_failed",
                    stage=stage,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    exc_info=exc,
                )
                await self.dead_letter(
                    record, reason=failure_reason(exc), detail=f"{stage}: {exc!r}"
                )
                return False
        return False  # not reached: the last attempt returns or dead-letters

    async def send_internal(
        self, *, topic: str, key: str, message: internal.InternalMessage
    ) -> Any:
        """Send one internal message; the broker's acknowledgement (an awaitable)."""
        value, headers = internal.encode(message)
        fut = await self.outbox.send(topic=topic, key=key.encode(), value=value, headers=headers)
        self.metrics.service.produced.labels(topic).inc()
        return fut

    async def acks_failed(
        self,
        stage: str,
        records: Sequence[Incoming],
        failed: Mapping[int, BaseException],
        *,
        done: set[int],
        attempt: int,
    ) -> None:
        """After a batch's acknowledgements failed: dead-letter or back off before a re-run.

        Records whose message the broker refused for good are dead-lettered (as the record
        they came from, `origin_of`) and added to `done`; when it only failed to answer,
        nothing is wrong with the records: the stage is marked retrying (readiness) and the
        caller runs the whole batch again after a backoff.
        """
        refused = {i: exc for i, exc in failed.items() if not is_transient(exc)}
        for index, exc in sorted(refused.items()):
            self.record_error(stage, exc)
            await self.dead_letter(
                origin_of(records[index]), reason="produce_failed", detail=f"{stage}: {exc!r}"
            )
            done.add(index)
        if refused:
            return
        health = self.health[stage]
        self.record_error(stage, next(iter(failed.values())))
        if health.retrying_since is None:
            health.retrying_since = time.monotonic()
        self.metrics.service.consumer_retries.labels(AGENT_NAMES[stage], "transient").inc()
        log.warning(
            "acks_failed_retrying_batch", stage=stage, attempt=attempt, error=health.last_error
        )
        await asyncio.sleep(self.backoff(attempt))
