"""The four routing stages and the deadline scan: decode, call the domain, emit.

Why these stages. A duplicate can arrive on any partition of `received` (it has another
recommendation id), so the duplicate check cannot run where the case lives; and an agency's
response arrives on whatever partition of `inbound.responses` its Kafka client chose (Java
and aiokafka hash the key with murmur2, librdkafka's default is CRC32, a custom client may
choose anything), so it cannot be applied where it lands either. Routing never depends on
the producer's partitioner: everything stage 3 reads is written by routing itself. Instead:

1. `on_received` (topic `received`, keyed by recommendation id) decodes, classifies
   (`classify.Classifier`) and sends a *candidate* (the received event, its classification
   and its `duplicates.signature`) to the internal topic ROUTING_DEDUP keyed by
   `duplicates.bucket_key`: every case that could be a duplicate of another lands on the
   same partition, whichever worker owns it.
2. `on_dedup` (ROUTING_DEDUP, keyed by bucket) keeps the faust table `buckets` (one entry
   per open case: `tables.member_key(bucket, case)` -> signature, so a write costs one
   signature whatever the bucket's size) and an in-memory index bucket -> signatures
   (rebuilt from the table after each rebalance), ranks the open cases once
   (`DuplicateIndex.rank`: the first is merged when it reaches the merge bar, else the
   cases above the suggestion bar are suggested, best first), adds a new case's signature,
   and sends the verdict (`route`: new with its suggestions, or duplicate of an open case)
   to ROUTING_COMMANDS keyed by recommendation id. It also applies `leave` (a case was
   closed or re-classified) and `join` (a triaged case got its real classification).
R. `on_responses` (INBOUND_RESPONSES, any partition, no state) re-keys agencies' responses:
   it does the checks that need no case (CloudEvents headers, size, JSON, schema, type
   `Response`, Kafka key = recommendation id) and dead-letters what fails, alone, with its
   reason and its own coordinates; it forwards the rest *unchanged* (value, key, headers)
   to ROUTING_COMMANDS with routing's producer (aiokafka's murmur2 partitioner, like every
   other command), adding `phoihop_origin_topic/_partition/_offset` headers (any such
   header an agency sent is dropped first). The batch's acknowledgements are awaited
   before its offsets can be committed. So a response reaches the partition, and the
   worker, that owns its case, whatever client produced it.
3. `on_cases` (ROUTING_COMMANDS + ROUTING_TIMERS, co-partitioned with the `cases`
   changelog, keyed by recommendation id) owns the table `cases` and is the single writer
   of every event with sequence >= 2. It takes a batch of records, runs `lifecycle.apply`
   on each in order (a case touched twice in the batch continues from its state earlier in
   the batch), sends all the resulting events, awaits the broker's acknowledgements
   together, then writes the new states. Events are acknowledged *before* the state is
   written, and the batch's offsets are committed only after the writes, so a crash in
   between replays the batch against the old states and re-emits the same events with the
   same deterministic ids (consumers de-duplicate by id); a crash after the writes finds
   the commands already applied (known case, response id in `processed`, tick no longer
   due) and emits nothing. A response forwarded twice (stage R replayed after a crash, or
   its batch re-sent) is therefore applied once. A forwarded response rejected here
   (`not_assignee`, `unknown_recommendation`, ...) is dead-lettered as the inbound record
   it came from (`origin_of`: topic, partition, offset, headers of the original).
   Effects between cases (a merged duplicate is linked to its open case, which may live
   on another partition) are `link` commands keyed by the target case (and, when that
   case was already answered, an `answer_of` command back to the duplicate), so each case
   is still written by its own partition only.

Batches: every agent reads `stream.take_events(batch_max, within=batch_within)`; table
writes name the partition of the record that caused them (`tables.PartitionedTable`),
since faust would otherwise log them to the partition of the batch's last event.

Deadlines: `scan_due` (a faust timer) reads the local `cases` of the active partitions
through an in-memory index (next due instant per case, rebuilt from the table after each
rebalance) and sends `tick` commands to ROUTING_TIMERS; the state change happens in
`on_cases`, the only place faust allows table writes, and re-checks the deadline there.

Anything that cannot be decoded or does not fit the state goes to the dead-letter topic
with `dlq_*` headers and a reason (`DecodeError.reason`, `key_mismatch`, `not_assignee`,
`unknown_recommendation`, `invalid_transition`, `answer_closed_case`, ...); the agents
never crash on input.

One record never stalls an agent (the consumer kit's policy, for faust): each record of
every stage runs inside `Pipeline._guarded`. Any exception it raises (not only the known
rejections) is caught; broker trouble is retried `record_attempts` times in process, and
then, or for anything else, that record alone is dead-lettered (`internal_error`,
`invalid_text` for text that cannot be encoded) with the exception in `dlq_detail`, and
its neighbours proceed. In stages R and 3 each record's messages are all built (encoded)
before any is sent, so a failing record sends nothing (in stage 3 its state is not part of
the batch's writes); a broker that refuses an acknowledgement for good dead-letters the
record whose message it was (`produce_failed`) and the batch is re-run without it, while
acknowledgements that time out retry the whole batch (same event ids; a response sent
twice is applied once) and mark the stage stuck for readiness.
Dead letters go through `phoihop_common.dlq.dead_letter_message`, which summarises
oversized values, and a dead letter that cannot be sent is logged and counted, never
raised. `Pipeline.problem` tells readiness when a stage is stuck or its agent crashed.

Internal topics carry plain JSON objects `{"op": ..., ...}` with header
`phoihop_internal: 1`, except the responses stage R forwards to ROUTING_COMMANDS, which
stay CloudEvents (binary mode) like the canonical and inbound topics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    NodeNotReadyError,
)
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from phoihop_common.dlq import dead_letter_message
from phoihop_common.logs import get_logger
from phoihop_common.metrics import ServiceMetrics
from phoihop_routing import duplicates
from phoihop_routing.classify import Classification, Classifier
from phoihop_routing.duplicates import CaseSignature, DuplicateIndex, bucket_key, signature
from phoihop_routing.exceptions import InternalMessageError, RejectedError
from phoihop_routing.lifecycle import (
    AnswerOf,
    CaseState,
    Command,
    JoinBucket,
    LeaveBucket,
    Link,
    LinkCase,
    Outcome,
    Policy,
    Respond,
    Route,
    ShareAnswer,
    Tick,
    apply,
    next_due,
)
from phoihop_routing.tables import compact_signature, iter_members, member_key
from phoihop_schemas import codec, textpolicy
from phoihop_schemas.events import (
    Decision,
    Level,
    LifecycleEvent,
    Received,
    Response,
    SuggestedDuplicate,
)
from phoihop_schemas.topics import (
    CANONICAL,
    DEAD_LETTER,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
    ROUTING_TIMERS,
)

SOURCE = "/phoihop/routing"
SERVICE = "routing"
INTERNAL_HEADER = "phoihop_internal"
log = get_logger(__name__)

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


# --------------------------------------------------------------------------- plumbing


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


def internal(payload: Mapping[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of an internal message."""
    value = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return value, [(INTERNAL_HEADER, b"1")]


def parse_internal(record: Incoming) -> dict[str, Any]:
    """Decode an internal message or raise InternalMessageError."""
    if record.value is None:
        raise InternalMessageError("empty value")
    try:
        payload = textpolicy.loads(record.value)
    except textpolicy.JsonPolicyError as exc:
        raise InternalMessageError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("op"), str):
        raise InternalMessageError("no op")
    return payload


def decode_response(record: Incoming) -> Response:
    """An agency's response, checked as far as it can be without its case.

    Raises `codec.DecodeError` (headers, size, JSON, schema; `unexpected_type` for another
    event) or `RejectedError("key_mismatch")`: the contract keys a response by its
    recommendation id, which keeps one case's responses in order on one partition.
    """
    envelope = codec.decode(value=record.value, headers=record.headers, key=record.key)
    if not isinstance(envelope.data, Response):
        raise codec.DecodeError("unexpected_type", f"{envelope.type} on {record.topic}")
    rec_id = envelope.data.recommendation_id
    key = record.key.decode(errors="replace") if record.key else None
    if key != rec_id:
        raise RejectedError("key_mismatch", f"key {key!r} != recommendation {rec_id}")
    return envelope.data


def classification_dict(c: Classification) -> dict[str, Any]:
    """JSON form of a Classification (carried between stages)."""
    return {
        "category": c.category,
        "level": str(getattr(c.level, "value", c.level)),
        "agency": c.agency,
        "decision": c.decision.model_dump(mode="json"),
    }


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


# --------------------------------------------------------------------------- pipeline


@dataclass
class Pipeline:
    """Routing's processing, independent of how faust delivers the records."""

    policy: Policy
    classifier: Classifier
    cases: MutableMapping[str, Any]  # rec id -> CaseState dict (a `PartitionedTable`)
    buckets: MutableMapping[str, Any]  # member_key(bucket, rec id) -> CaseSignature
    outbox: Outbox
    metrics: RoutingMetrics
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    due_index: dict[str, datetime] = field(default_factory=dict)
    partitions_of: dict[str, int] = field(default_factory=dict)
    open_ids: set[str] = field(default_factory=set)
    tick_sent: dict[str, float] = field(default_factory=dict)
    index_generation: int | None = None
    members: dict[str, DuplicateIndex] = field(default_factory=dict)
    bucket_generation: int | None = None
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
                    await asyncio.sleep(self._backoff(attempt))
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

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1)))

    async def _guarded(
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
                    await asyncio.sleep(self._backoff(attempt))
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

    async def _send_internal(self, *, topic: str, key: str, payload: Mapping[str, Any]) -> Any:
        value, headers = internal(payload)
        fut = await self.outbox.send(topic=topic, key=key.encode(), value=value, headers=headers)
        self.metrics.service.produced.labels(topic).inc()
        return fut

    # ---------------------------------------------------------------- stage 1

    async def on_received(self, record: Incoming) -> None:
        """Stage 1: decode and classify a received event, send the candidate to its bucket."""
        await self._guarded(STAGE_RECEIVED, record, lambda: self._received(record))

    async def _received(self, record: Incoming) -> bool:
        started = time.perf_counter()
        try:
            envelope = codec.decode(value=record.value, headers=record.headers, key=record.key)
        except codec.DecodeError as exc:
            await self.dead_letter(record, reason=exc.reason, detail=exc.detail)
            return False
        received = envelope.data
        if not isinstance(received, Received):
            await self.dead_letter(
                record, reason="unexpected_type", detail=f"{envelope.type} on {record.topic}"
            )
            return False
        try:
            classification = self.classifier.classify(
                text=received.text, kind=received.kind, locality=received.locality
            )
            bucket = bucket_key(locality=received.locality, classification=classification)
            sig = signature(
                recommendation_id=received.recommendation_id,
                text=received.text,
                locality=received.locality,
                classification=classification,
            )
        except Exception as exc:  # the classifier's failure must not stop the partition
            self.record_error(STAGE_RECEIVED, exc)
            log.exception("classification_failed", recommendation_id=received.recommendation_id)
            await self.dead_letter(record, reason="classification_failed", detail=repr(exc))
            return False
        await self._send_internal(
            topic=ROUTING_DEDUP.name,
            key=bucket,
            payload={
                "op": "candidate",
                "bucket": bucket,
                "received": received.model_dump(mode="json"),
                "classification": classification_dict(classification),
                "signature": sig.to_dict(),
            },
        )
        self.metrics.service.consumed.labels(record.topic, "ok").inc()
        self.metrics.service.processing.labels(record.topic).observe(time.perf_counter() - started)
        return True

    # ---------------------------------------------------------------- stage 2

    async def on_dedup(self, record: Incoming) -> None:
        """Stage 2: duplicate verdict within one bucket; bucket membership updates."""
        await self._guarded(STAGE_DEDUP, record, lambda: self._dedup(record))

    async def _dedup(self, record: Incoming) -> bool:
        try:
            payload = parse_internal(record)
            op = payload["op"]
            if op == "candidate":
                await self._candidate(payload, partition=record.partition)
            elif op == "leave":
                self._leave(
                    bucket=payload["bucket"],
                    rec_id=payload["recommendation_id"],
                    partition=record.partition,
                )
            elif op == "join":
                self._join(
                    bucket=payload["bucket"], sig=payload["signature"], partition=record.partition
                )
            else:
                raise InternalMessageError(f"unknown op {op!r}")
        except (InternalMessageError, KeyError, TypeError, ValueError) as exc:
            await self.dead_letter(record, reason="bad_internal_message", detail=str(exc))
            return False
        self.metrics.service.consumed.labels(record.topic, "ok").inc()
        return True

    def rebuild_buckets(self, *, generation: int | None) -> None:
        """Re-read the bucket-member table into the in-memory index (after a rebalance)."""
        self.members.clear()
        for bucket, _, sig in iter_members(self.buckets):
            self.members.setdefault(bucket, DuplicateIndex()).add(sig)
        self.bucket_generation = generation

    def bucket_members(self, bucket: str) -> list[CaseSignature]:
        """Signatures of the open cases of one bucket, oldest first."""
        index = self.members.get(bucket)
        return index.values() if index is not None else []

    async def _candidate(self, payload: Mapping[str, Any], *, partition: int) -> None:
        bucket = payload["bucket"]
        candidate = compact_signature(payload["signature"])
        rec_id = payload["received"]["recommendation_id"]
        members = self.members.get(bucket)
        already_member = members is not None and rec_id in members
        # one search: the merge (the first candidate when it reaches the merge bar, = what
        # `find_duplicate` returns) or else the suggestions, best first
        ranked = [] if already_member or members is None else members.rank(candidate=candidate)
        found = ranked[0] if ranked and ranked[0].verdict == duplicates.MERGE else None
        version = str(getattr(duplicates, "VERSION", "1"))
        verdict: dict[str, Any] = {
            "op": "route",
            "bucket": bucket,
            "received": payload["received"],
            "classification": payload["classification"],
            "duplicate_of": None,
            "similarity": 0.0,
            "merge_decision": None,
            "suggestions": [],
            "suggest_decision": None,
        }
        if found is not None:
            score = max(0.0, min(1.0, float(found.similarity)))
            verdict["duplicate_of"] = found.recommendation_id
            verdict["similarity"] = score
            verdict["merge_decision"] = Decision(
                rule="duplicates.find_duplicate",
                version=version,
                evidence=(
                    f"bucket={bucket}",
                    f"open_case={found.recommendation_id}",
                    f"similarity={score:.3f}",
                ),
                confidence=score,
            ).model_dump(mode="json")
        suggestions = (
            []
            if found is not None
            else [
                SuggestedDuplicate(
                    recommendation_id=c.recommendation_id,
                    similarity=max(0.0, min(1.0, float(c.similarity))),
                    evidence=c.evidence,
                )
                for c in ranked
                if c.verdict == duplicates.SUGGEST_VERDICT
            ]
        )
        if suggestions:
            verdict["suggestions"] = [s.model_dump(mode="json") for s in suggestions]
            verdict["suggest_decision"] = Decision(
                rule="duplicates.rank_candidates",
                version=version,
                evidence=(
                    f"bucket={bucket}",
                    *(
                        f"suggested={s.recommendation_id} similarity={s.similarity:.3f}"
                        for s in suggestions
                    ),
                ),
                confidence=max(s.similarity for s in suggestions),
            ).model_dump(mode="json")
        await self._send_internal(topic=ROUTING_COMMANDS.name, key=rec_id, payload=verdict)
        if found is None and not already_member:
            self._add_member(bucket, candidate, partition=partition)

    def _add_member(self, bucket: str, sig: CaseSignature, *, partition: int) -> None:
        rec_id = sig.recommendation_id
        _put(self.buckets, member_key(bucket, rec_id), sig, partition=partition)
        self.members.setdefault(bucket, DuplicateIndex()).add(sig)

    def _leave(self, *, bucket: str, rec_id: str, partition: int) -> None:
        members = self.members.get(bucket)
        if members is None or rec_id not in members:
            return
        _remove(self.buckets, member_key(bucket, rec_id), partition=partition)
        members.remove(rec_id)
        if not members:
            del self.members[bucket]

    def _join(self, *, bucket: str, sig: Mapping[str, Any], partition: int) -> None:
        joining = compact_signature(dict(sig))
        members = self.members.get(bucket)
        if members is None or joining.recommendation_id not in members:
            self._add_member(bucket, joining, partition=partition)

    # ---------------------------------------------------------------- stage R

    async def on_responses(self, records: Sequence[Incoming]) -> None:
        """Stage R: check a batch of inbound responses, forward them keyed by their case.

        Each record is checked (`decode_response`: everything that needs no case state) and
        dead-lettered alone if it fails (`_guarded`); the others are sent unchanged, with
        their origin headers, to ROUTING_COMMANDS keyed by recommendation id. The broker's
        acknowledgements are awaited before returning, so the offsets faust commits after
        the batch are those of forwarded (or dead-lettered) records only. An acknowledgement
        refused for good dead-letters its record (`produce_failed`); when some only failed
        to arrive, the whole batch (but the dead letters) is sent again, in order, after a
        backoff: stage 3 applies a response id once.
        """
        done: set[int] = set()  # dead-lettered: not sent again when the batch is re-run
        attempt = 0
        while True:
            acks: list[tuple[int, Any]] = []
            for index, record in enumerate(records):
                if index in done:
                    continue
                work = functools.partial(self._forward, record, acks, index=index)
                if not await self._guarded(STAGE_RESPONSES, record, work):
                    done.add(index)
            failed = await settle_acks(acks)
            if not failed:
                break
            attempt += 1
            await self._acks_failed(STAGE_RESPONSES, records, failed, done=done, attempt=attempt)
            if failed.keys() <= done:
                break  # only refusals, all dead-lettered: every other forward is acknowledged
        self.health[STAGE_RESPONSES].retrying_since = None

    async def _forward(self, record: Incoming, acks: list[tuple[int, Any]], *, index: int) -> bool:
        started = time.perf_counter()
        try:
            response = decode_response(record)
        except (codec.DecodeError, RejectedError) as exc:
            await self.dead_letter(record, reason=exc.reason, detail=exc.detail)
            return False
        headers = forward_headers(record)
        ack = await self.outbox.send(
            topic=ROUTING_COMMANDS.name,
            key=response.recommendation_id.encode(),
            value=record.value or b"",
            headers=headers,
        )
        self.metrics.service.produced.labels(ROUTING_COMMANDS.name).inc()
        acks.append((index, ack))
        self.metrics.service.consumed.labels(record.topic, "ok").inc()
        self.metrics.service.processing.labels(record.topic).observe(time.perf_counter() - started)
        return True

    async def _acks_failed(
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
        await asyncio.sleep(self._backoff(attempt))

    # ---------------------------------------------------------------- stage 3

    async def on_case(self, record: Incoming) -> None:
        """Stage 3 for one record (see `on_cases`)."""
        await self.on_cases([record])

    async def on_cases(self, records: Sequence[Incoming]) -> None:
        """Stage 3: apply a batch of commands and responses; emit, await the acks, then write.

        Commands are applied in order, each to the state its case reached earlier in the
        batch; every event of the batch is sent, the broker's acknowledgements are awaited
        together, and only then is each changed case written (to the changelog partition of
        the record that changed it). The offsets are committed after the batch, so a crash
        before the writes replays the whole batch against the old states and re-emits the
        same event ids. A record that fails is dead-lettered alone (`_guarded`) and takes
        no part in the writes; when acknowledgements fail, the batch is run again from the
        old states (without the records dead-lettered meanwhile) until they all succeed.
        """
        done: set[int] = set()  # dead-lettered: not run again when the batch is re-run
        attempt = 0
        while True:
            batch = _CaseBatch()
            for index, record in enumerate(records):
                if index in done:
                    continue
                work = functools.partial(self._case, record, batch, index=index)
                # a forwarded response fails as the inbound record it came from
                ok = await self._guarded(STAGE_CASES, origin_of(record), work)
                if not ok:
                    done.add(index)
            failed = await batch.settle()  # durable before the state says they happened
            if not failed:
                break
            attempt += 1
            await self._acks_failed(STAGE_CASES, records, failed, done=done, attempt=attempt)
        self.health[STAGE_CASES].retrying_since = None
        for event in batch.emitted:
            self._count(event)
        for partition, state in batch.writes.values():
            _put(self.cases, state.recommendation_id, state.to_dict(), partition=partition)
            self._index(state)

    async def _case(self, record: Incoming, batch: _CaseBatch, *, index: int) -> bool:
        started = time.perf_counter()
        rejected = origin_of(record)  # what a dead letter names: the inbound record, if any
        try:
            rec_id, command = self._command(record)
        except codec.DecodeError as exc:
            await self.dead_letter(rejected, reason=exc.reason, detail=exc.detail)
            return False
        except RejectedError as exc:
            await self.dead_letter(rejected, reason=exc.reason, detail=exc.detail)
            return False
        except (InternalMessageError, KeyError, TypeError, ValueError) as exc:
            await self.dead_letter(rejected, reason="bad_internal_message", detail=str(exc))
            return False
        state = batch.state(rec_id)
        if state is None:
            raw = self.cases.get(rec_id)
            state = CaseState.from_dict(raw) if raw else None
        try:
            outcome = apply(state, command, policy=self.policy, now=self.clock())
        except RejectedError as exc:
            await self.dead_letter(rejected, reason=exc.reason, detail=exc.detail)
            return False
        # everything is encoded before anything is sent: a record that fails sends nothing
        messages = self._messages(outcome)
        for message in messages:
            ack = await self.outbox.send(
                topic=message.topic, key=message.key, value=message.value, headers=message.headers
            )
            self.metrics.service.produced.labels(message.topic).inc()
            batch.acks.append((index, ack))
            if message.event is not None:
                log.info(
                    "emitted",
                    event_type=type(message.event).event_name,
                    recommendation_id=message.event.recommendation_id,
                    sequence=message.event.sequence,
                )
        batch.emitted.extend(m.event for m in messages if m.event is not None)
        if outcome.changed and outcome.state is not None:
            batch.changed(
                outcome.state.model_copy(update={"partition": record.partition}),
                partition=record.partition,
            )
        self.metrics.service.consumed.labels(record.topic, "ok").inc()
        self.metrics.service.processing.labels(record.topic).observe(time.perf_counter() - started)
        return True

    def _command(self, record: Incoming) -> tuple[str, Command]:
        """The case a record is about and the command it carries."""
        if record.header("ce_type") is not None or record.header(INTERNAL_HEADER) is None:
            response = decode_response(record)  # a response forwarded by stage R
            return response.recommendation_id, Respond(response=response)
        payload = parse_internal(record)
        op = payload["op"]
        if op == "route":
            c = payload["classification"]
            merge = payload.get("merge_decision")
            suggested = payload.get("suggest_decision")
            received = Received.model_validate(payload["received"])
            try:
                return received.recommendation_id, Route(
                    received=received,
                    category=c["category"],
                    level=Level(c["level"]),
                    agency=c["agency"],
                    decision=Decision.model_validate(c["decision"]),
                    bucket=payload.get("bucket"),
                    duplicate_of=payload.get("duplicate_of"),
                    similarity=float(payload.get("similarity") or 0.0),
                    merge_decision=Decision.model_validate(merge) if merge else None,
                    suggestions=tuple(
                        SuggestedDuplicate.model_validate(x)
                        for x in payload.get("suggestions") or ()
                    ),
                    suggest_decision=Decision.model_validate(suggested) if suggested else None,
                )
            except ValidationError as exc:
                raise InternalMessageError(str(exc)[:300]) from exc
        target = str(payload["recommendation_id"])
        if op == "link":
            return target, Link(
                merged_id=payload["merged_id"], submitted_by=payload["submitted_by"]
            )
        if op == "tick":
            return target, Tick()
        if op == "answer_of":
            return target, AnswerOf(
                source_case=str(payload["source_case"]),
                agency=str(payload["agency"]),
                text=str(payload["text"]),
                on_time=bool(payload["on_time"]),
            )
        raise InternalMessageError(f"unknown op {op!r}")

    def _messages(self, outcome: Outcome) -> list[_Message]:
        """The records an outcome sends: its events, then its effects' internal commands."""
        out = [self._event_message(event) for event in outcome.events]
        for effect in outcome.effects:
            message = self._effect(effect, outcome.state)
            if message is not None:
                out.append(message)
        return out

    @staticmethod
    def _event_message(event: LifecycleEvent) -> _Message:
        rec = codec.encode(event, source=SOURCE)
        topic = CANONICAL[type(event).event_name].name
        return _Message(topic, rec.key, rec.value, list(rec.headers), event)

    def _count(self, event: LifecycleEvent) -> None:
        name = type(event).event_name
        m = self.metrics
        if name == "assigned":
            agency = str(getattr(event, "agency", ""))
            m.assignments.labels(agency).inc()
            if agency == self.policy.triage_agency:
                m.triaged.inc()
        elif name == "merged":
            m.merged.inc()
        elif name == "escalated":
            m.escalations.labels(str(getattr(event, "level", ""))).inc()
        elif name == "reminded":
            m.reminders.inc()

    def _effect(self, effect: Any, state: CaseState | None) -> _Message | None:
        if isinstance(effect, LinkCase):
            return _Message.internal(
                topic=ROUTING_COMMANDS.name,
                key=effect.target,
                payload={
                    "op": "link",
                    "recommendation_id": effect.target,
                    "merged_id": effect.merged_id,
                    "submitted_by": effect.submitted_by,
                },
            )
        if isinstance(effect, ShareAnswer):
            # keyed by the duplicate: its own partition emits its `answered` (lifecycle doc)
            return _Message.internal(
                topic=ROUTING_COMMANDS.name,
                key=effect.target,
                payload={
                    "op": "answer_of",
                    "recommendation_id": effect.target,
                    "source_case": effect.source_case,
                    "agency": effect.agency,
                    "text": effect.text,
                    "on_time": effect.on_time,
                },
            )
        if isinstance(effect, LeaveBucket):
            return _Message.internal(
                topic=ROUTING_DEDUP.name,
                key=effect.bucket,
                payload={
                    "op": "leave",
                    "bucket": effect.bucket,
                    "recommendation_id": effect.recommendation_id,
                },
            )
        if isinstance(effect, JoinBucket) and state is not None:
            # the text's own features (terms, scope) with triage's category and level
            guessed = self.classifier.classify(
                text=state.text, kind=state.kind, locality=state.locality
            )
            classification = dataclasses.replace(
                guessed,
                category=state.category or guessed.category,
                level=state.level or guessed.level,
                agency=state.agency or guessed.agency,
            )
            bucket = bucket_key(locality=state.locality, classification=classification)
            sig = signature(
                recommendation_id=state.recommendation_id,
                text=state.text,
                locality=state.locality,
                classification=classification,
            )
            return _Message.internal(
                topic=ROUTING_DEDUP.name,
                key=bucket,
                payload={"op": "join", "bucket": bucket, "signature": sig.to_dict()},
            )
        return None

    # ---------------------------------------------------------------- deadlines

    def _index(self, state: CaseState) -> None:
        rec_id = state.recommendation_id
        self.tick_sent.pop(rec_id, None)
        due = next_due(state, policy=self.policy)
        if due is None:
            self.due_index.pop(rec_id, None)
        else:
            self.due_index[rec_id] = due
        if state.partition is not None:
            self.partitions_of[rec_id] = state.partition
        if state.is_open:
            self.open_ids.add(rec_id)
        else:
            self.open_ids.discard(rec_id)
        self.metrics.open_cases.set(len(self.open_ids))

    def rebuild_index(self, *, active_partitions: Iterable[int], generation: int | None) -> None:
        """Re-read the local `cases` of the active partitions (after a rebalance)."""
        active = set(active_partitions)
        self.due_index.clear()
        self.partitions_of.clear()
        self.open_ids.clear()
        self.tick_sent.clear()
        for _key, raw in list(self.cases.items()):
            if not raw:
                continue
            state = CaseState.from_dict(raw)
            if state.partition is None or state.partition in active:
                self._index(state)
        self.metrics.open_cases.set(len(self.open_ids))
        self.index_generation = generation

    async def scan_due(self, *, resend_after: float = 10.0) -> int:
        """Send a `tick` for every local case with a reminder or escalation due; count them."""
        now = self.clock()
        mono = time.monotonic()
        sent = 0
        for rec_id, due in list(self.due_index.items()):
            if due > now:
                continue
            last = self.tick_sent.get(rec_id)
            if last is not None and mono - last < resend_after:
                continue
            await self._send_internal(
                topic=ROUTING_TIMERS.name,
                key=rec_id,
                payload={"op": "tick", "recommendation_id": rec_id, "due": due.isoformat()},
            )
            self.tick_sent[rec_id] = mono
            sent += 1
        return sent


@dataclass(frozen=True)
class _Message:
    """One record stage 3 sends (built, encoded, before anything of its command is sent)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    event: LifecycleEvent | None = None

    @classmethod
    def internal(cls, *, topic: str, key: str, payload: Mapping[str, Any]) -> _Message:
        """An internal command (plain JSON, `phoihop_internal` header)."""
        value, headers = internal(payload)
        return cls(topic, key.encode(), value, headers)


@dataclass
class _CaseBatch:
    """What one stage-3 batch sent (acks to await, by record) and the case states it leads to."""

    acks: list[tuple[int, Any]] = field(default_factory=list)
    writes: dict[str, tuple[int, CaseState]] = field(default_factory=dict)
    emitted: list[LifecycleEvent] = field(default_factory=list)

    async def settle(self) -> dict[int, BaseException]:
        """Await every acknowledgement; the first failure of each record, by record index."""
        return await settle_acks(self.acks)

    def state(self, rec_id: str) -> CaseState | None:
        """The state a case reached earlier in this batch (None: not touched yet)."""
        write = self.writes.get(rec_id)
        return write[1] if write else None

    def changed(self, state: CaseState, *, partition: int) -> None:
        """Remember the case's new state (only its last state in the batch is written)."""
        self.writes[state.recommendation_id] = (partition, state)


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


def _put(table: Any, key: str, value: Any, *, partition: int) -> None:
    put = getattr(table, "put", None)
    if put is not None:
        put(key, value, partition=partition)
    else:
        table[key] = value


def _remove(table: Any, key: str, *, partition: int) -> None:
    remove = getattr(table, "remove", None)
    if remove is not None:
        remove(key, partition=partition)
    else:
        table.pop(key, None)
