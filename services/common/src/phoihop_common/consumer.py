"""The one consumer kit every aiokafka consumer of the bus uses (ingest, audit, notify).

Policy, the same everywhere:

- Batches from `getmany`; the handler applies a whole batch (usually one database
  transaction) and offsets are committed only after it returned: effects before offsets.
- The handler *rejects* records it can tell are invalid (undecodable, wrong type, …): the
  kit dead-letters each of them alone, with its reason, and commits its neighbours.
- A *transient* failure (database or broker unreachable: the exception types the service
  names) retries the whole batch with backoff, dead-lettering nothing; meanwhile readiness
  reports the consumer stuck once that has lasted longer than `consumer_stuck_after_s`.
- Any other failure means some record of the batch is poison: the batch is re-run one
  record at a time; a record that still fails after `consumer_record_attempts` attempts is
  dead-lettered alone (reason `processing_failed`) and the others proceed.
- Dead letters go through `dlq.dead_letter`, which can always publish (oversized values are
  summarised), so a dead letter never becomes a poison of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError
from pydantic import BaseModel

from phoihop_common.dlq import dead_letter
from phoihop_common.kafka import KafkaSettings, consumer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.metrics import ServiceMetrics, record_consumer_lag
from phoihop_common.shutdown import bounded

log = get_logger(__name__)

Raw: TypeAlias = ConsumerRecord[bytes, bytes]

# Broker trouble is transient for every service; services add their database's errors.
KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    ConnectionError,
    TimeoutError,
)
# Under load the lag gauge is refreshed at most this often: it awaits the position of every
# assigned partition (60 for audit), which cost 2 % of notify's CPU when done per batch.
LAG_INTERVAL_S = 1.0


class ConsumerPolicy(BaseModel):
    """Batch size, retries and the stuck threshold of a consumer (mixed into settings)."""

    consumer_max_records: int = 500
    consumer_record_attempts: int = 3
    consumer_retry_backoff_s: float = 0.5
    consumer_retry_backoff_max_s: float = 10.0
    consumer_stuck_after_s: float = 30.0
    consumer_session_timeout_ms: int = 10_000
    # Batch linger: after the first records arrive, keep fetching for up to this long (or
    # until `consumer_linger_records`) before applying them, so that under load one
    # database transaction and one offset commit serve many records. 0: apply at once.
    consumer_linger_ms: int = 0
    consumer_linger_records: int = 200


@dataclass(frozen=True)
class Reject:
    """A record the handler refuses: it goes to the dead-letter topic alone."""

    record: Raw
    reason: str
    detail: str


Handler = Callable[[Sequence[Raw]], Awaitable[Sequence[Reject]]]


@dataclass
class Health:
    """What readiness and the `consumer_stuck` gauge are computed from."""

    stuck_after: float
    busy_since: float | None = None
    failing_since: float | None = None
    last_error: str = ""
    last_commit: float = field(default_factory=time.monotonic)
    lag: int = 0

    def problem(self, *, now: float | None = None) -> str | None:
        """None when healthy, else why the consumer counts as stuck."""
        now = time.monotonic() if now is None else now
        if self.failing_since is not None and now - self.failing_since > self.stuck_after:
            waited = now - self.failing_since
            return f"retrying the same records for {waited:.0f} s: {self.last_error}"
        if self.busy_since is not None and now - self.busy_since > self.stuck_after:
            return f"one batch in progress for {now - self.busy_since:.0f} s"
        if self.lag > 0 and now - self.last_commit > self.stuck_after and self.busy_since is None:
            return f"lag {self.lag} and nothing committed for {now - self.last_commit:.0f} s"
        return None


class ConsumerKit:
    """An aiokafka consumer group member that applies the bus's poison-proof policy."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        group_id: str,
        settings: KafkaSettings,
        policy: ConsumerPolicy,
        handler: Handler,
        producer: Callable[[], AIOKafkaProducer | None],
        metrics: ServiceMetrics,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.group_id = group_id
        self.settings = settings
        self.policy = policy
        self.handler = handler
        self.producer = producer
        self.metrics = metrics
        self.transient = (*KAFKA_TRANSIENT, *transient)
        self.health = Health(stuck_after=policy.consumer_stuck_after_s)
        self.consumer: AIOKafkaConsumer | None = None
        metrics.consumer_stuck.labels(name).set_function(
            lambda: 0.0 if self.health.problem() is None else 1.0
        )

    # ---------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        """True once connected to the group."""
        return self.consumer is not None

    @property
    def assigned(self) -> bool:
        """True once the group gave this member partitions."""
        return self.consumer is not None and bool(self.consumer.assignment())

    def problem(self) -> str | None:
        """Why readiness should fail (stuck consumer), or None."""
        return self.health.problem()

    async def start(self) -> None:
        """Connect and join the group (raises when the broker is unreachable)."""
        timeout = self.policy.consumer_session_timeout_ms
        consumer = AIOKafkaConsumer(
            *self.topics,
            **consumer_kwargs(self.settings),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=timeout,
            heartbeat_interval_ms=max(1000, timeout // 5),
            max_poll_records=self.policy.consumer_max_records,
        )
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
            raise
        self.consumer = consumer

    async def start_forever(self) -> None:
        """Start, retrying every second until the broker answers."""
        while self.consumer is None:
            try:
                await self.start()
            except (KafkaError, OSError) as exc:
                log.warning("consumer_start_failed", consumer=self.name, error=str(exc))
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Leave the group (uncommitted records go to whoever takes over)."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await bounded(f"{self.name}_consumer", consumer.stop(), seconds=10.0)

    async def run(self) -> None:
        """Consume until cancelled (starting first if needed)."""
        await self.start_forever()
        assert self.consumer is not None
        consumer = self.consumer
        lag_at = 0.0
        while True:
            batches = await consumer.getmany(
                timeout_ms=500, max_records=self.policy.consumer_max_records
            )
            records = [r for part in batches.values() for r in part]
            # An empty poll always looks: readiness reads an idle consumer's lag.
            if not records or time.monotonic() - lag_at >= LAG_INTERVAL_S:
                self.health.lag = await record_consumer_lag(self.metrics, consumer)
                lag_at = time.monotonic()
            if not records:
                if self.health.lag == 0:
                    self.health.last_commit = time.monotonic()
                continue
            await self._linger(consumer, records)
            started = time.perf_counter()
            self.health.busy_since = time.monotonic()
            try:
                await self.process(records)
            finally:
                self.health.busy_since = None
            try:
                await consumer.commit()
                self.health.last_commit = time.monotonic()
            except KafkaError as exc:  # e.g. a rebalance: the records come again, deduplicated
                log.warning("commit_failed", consumer=self.name, error=str(exc))
            per_record = (time.perf_counter() - started) / len(records)
            for rec in records:
                self.metrics.processing.labels(rec.topic).observe(per_record)

    async def _linger(self, consumer: AIOKafkaConsumer, records: list[Raw]) -> None:
        """Add what arrives within the linger time to `records` (see ConsumerPolicy)."""
        policy = self.policy
        if policy.consumer_linger_ms <= 0:
            return
        target = min(policy.consumer_linger_records, policy.consumer_max_records)
        deadline = time.monotonic() + policy.consumer_linger_ms / 1000
        while len(records) < target:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return
            more = await consumer.getmany(
                timeout_ms=left_ms, max_records=policy.consumer_max_records - len(records)
            )
            records.extend(r for part in more.values() for r in part)

    # ---------------------------------------------------------------- policy

    async def process(self, records: Sequence[Raw]) -> None:
        """Apply one batch under the policy; returns once every record is done or dead."""
        try:
            await self._attempt(records)
            return
        except _PoisonError as exc:
            if len(records) > 1:
                log.warning(
                    "batch_failed_splitting",
                    consumer=self.name,
                    records=len(records),
                    error=exc.detail,
                )
                self.metrics.consumer_retries.labels(self.name, "batch_split").inc()
        for record in records:
            await self._one(record)

    async def _one(self, record: Raw) -> None:
        detail = ""
        for attempt in range(1, self.policy.consumer_record_attempts + 1):
            try:
                await self._attempt([record])
                return
            except _PoisonError as exc:
                detail = exc.detail
                self.metrics.consumer_retries.labels(self.name, "record").inc()
                log.warning(
                    "record_failed",
                    consumer=self.name,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    attempt=attempt,
                    error=detail,
                )
                if attempt < self.policy.consumer_record_attempts:
                    await asyncio.sleep(self._backoff(attempt))
        await self._until_done(
            lambda: self._dead_letter(Reject(record, "processing_failed", detail))
        )

    async def _attempt(self, records: Sequence[Raw]) -> None:
        """Run the handler; retry transient failures; raise _PoisonError for anything else."""

        async def apply() -> None:
            try:
                rejects = await self.handler(records)
            except self.transient:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the handler's bug or a poison record: not transient
                raise _PoisonError(f"{type(exc).__name__}: {exc}"[:1000]) from exc
            for reject in rejects:
                await self._dead_letter(reject)

        await self._until_done(apply)

    async def _until_done(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` until it does not fail transiently (readiness tells how long it takes)."""
        attempt = 0
        while True:
            try:
                await step()
            except self.transient as exc:
                attempt += 1
                now = time.monotonic()
                if self.health.failing_since is None:
                    self.health.failing_since = now
                self.health.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self.metrics.consumer_retries.labels(self.name, "transient").inc()
                log.warning(
                    "transient_failure", consumer=self.name, attempt=attempt, error=str(exc)[:300]
                )
                await asyncio.sleep(self._backoff(attempt))
                continue
            self.health.failing_since = None
            return

    def _backoff(self, attempt: int) -> float:
        base = self.policy.consumer_retry_backoff_s * 2 ** min(attempt - 1, 10)
        return float(min(self.policy.consumer_retry_backoff_max_s, base))

    async def _dead_letter(self, reject: Reject) -> None:
        producer = self.producer()
        if producer is None:
            raise KafkaConnectionError("dead-letter producer not connected")
        rec = reject.record
        log.warning(
            "dead_lettered",
            consumer=self.name,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            reason=reject.reason,
        )
        try:
            await dead_letter(
                producer,
                metrics=self.metrics,
                reason=reject.reason,
                detail=reject.detail,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                key=rec.key,
                value=rec.value,
                headers=list(rec.headers),
            )
        except self.transient:
            raise
        except KafkaError as exc:  # refused for good (ACL, size): never block the partition
            log.error("dead_letter_refused", consumer=self.name, offset=rec.offset, error=str(exc))
            self.metrics.dead_lettered.labels(rec.topic, "dead_letter_refused").inc()
        self.metrics.consumed.labels(rec.topic, "dead_lettered").inc()


class _PoisonError(Exception):
    """The handler failed in a way that retrying the batch as a whole won't fix."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
