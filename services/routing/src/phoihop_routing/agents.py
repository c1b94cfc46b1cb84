"""The four routing stages and the deadline scan, as one `Pipeline` the faust app calls.

Why these stages. A duplicate can arrive on any partition of `received` (it has another
recommendation id), so the duplicate check cannot run where the case lives; and an agency's
response arrives on whatever partition of `inbound.responses` its Kafka client chose, so it
cannot be applied where it lands either. Routing never depends on the producer's
partitioner: everything stage 3 reads is written by routing itself. Instead:

1. `stage_received.ReceivedStage` (topic `received`, keyed by recommendation id) decodes,
   classifies and sends a *candidate* to ROUTING_DEDUP keyed by its duplicate bucket.
2. `stage_dedup.DedupStage` (ROUTING_DEDUP, keyed by bucket) keeps the open cases of each
   bucket, sends the duplicate verdict (`route`) to ROUTING_COMMANDS keyed by
   recommendation id, and applies `leave` and `join`.
R. `stage_responses.ResponsesStage` (INBOUND_RESPONSES, any partition, no state) checks
   agencies' responses and forwards them, unchanged, to ROUTING_COMMANDS keyed by their case.
3. `stage_cases.CasesStage` (ROUTING_COMMANDS + ROUTING_TIMERS, co-partitioned with the
   `cases` changelog) owns the table `cases`, applies `lifecycle.apply` to batches of
   commands and responses, emits the events, awaits their acknowledgements, then writes.

Deadlines: `stage_deadlines.DeadlineScan` indexes the local cases' next deadlines and its
`scan_due` (a faust timer) sends `tick` commands to ROUTING_TIMERS for stage 3.

Batches: every agent reads `stream.take_ready(batch_max, batch_within)` (`streams`); table
writes name the partition of the record that caused them (`tables.PartitionedTable`),
since faust would otherwise log them to the partition of the batch's last event.

Anything that cannot be decoded or does not fit the state goes to the dead-letter topic
with `dlq_*` headers and a reason (`DecodeError.reason`, `key_mismatch`, `not_assignee`,
`unknown_recommendation`, `invalid_transition`, `answer_closed_case`,
`bad_internal_message`, ...); the agents never crash on input. The poison policy (one
record never stalls an agent, broker trouble retried, acknowledgements that fail) and
readiness (`Pipeline.problem`) live in `stage_base.Plumbing`, shared by the stages.

Internal topics carry plain JSON objects `{"op": ..., ...}` with header
`phoihop_internal: 1` (`internal`: one frozen type per op and their codec), except the
responses stage R forwards to ROUTING_COMMANDS, which stay CloudEvents (binary mode) like
the canonical and inbound topics.

This module is what the app imports: it re-exports the names other code uses from the stage
modules.
"""

from __future__ import annotations

import dataclasses  # noqa: F401  (tests reach `agents.dataclasses`)
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import CaseSignature
from phoihop_routing.internal import INTERNAL_HEADER
from phoihop_routing.lifecycle import CaseState, Command, Outcome, Policy, apply
from phoihop_routing.stage_base import (
    AGENT_NAMES,
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    ORIGIN_PREFIX,
    ORIGIN_TOPIC,
    SERVICE,
    SOURCE,
    STAGE_CASES,
    STAGE_DEDUP,
    STAGE_RECEIVED,
    STAGE_RESPONSES,
    TRANSIENT,
    Incoming,
    Outbox,
    Plumbing,
    RoutingMetrics,
    StageHealth,
    failure_reason,
    forward_headers,
    is_transient,
    origin_of,
    routing_metrics,
    settle_acks,
)
from phoihop_routing.stage_cases import CasesStage
from phoihop_routing.stage_deadlines import DeadlineScan
from phoihop_routing.stage_dedup import DedupStage
from phoihop_routing.stage_received import ReceivedStage
from phoihop_routing.stage_responses import ResponsesStage, decode_response

__all__ = [
    "AGENT_NAMES",
    "INTERNAL_HEADER",
    "ORIGIN_OFFSET",
    "ORIGIN_PARTITION",
    "ORIGIN_PREFIX",
    "ORIGIN_TOPIC",
    "SERVICE",
    "SOURCE",
    "STAGE_CASES",
    "STAGE_DEDUP",
    "STAGE_RECEIVED",
    "STAGE_RESPONSES",
    "TRANSIENT",
    "Incoming",
    "Outbox",
    "Pipeline",
    "RoutingMetrics",
    "StageHealth",
    "apply",
    "decode_response",
    "failure_reason",
    "forward_headers",
    "is_transient",
    "origin_of",
    "routing_metrics",
    "settle_acks",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _apply(state: CaseState | None, command: Command, *, policy: Policy, now: datetime) -> Outcome:
    """`lifecycle.apply`, looked up in this module at each call (a test may replace it)."""
    return apply(state, command, policy=policy, now=now)


class Pipeline:
    """Routing's processing, independent of how faust delivers the records.

    Built from one object per stage, which share the `Plumbing` (outbox, metrics, health,
    poison policy); its methods are those the faust agents and timer call.
    """

    def __init__(
        self,
        *,
        policy: Policy,
        classifier: Classifier,
        cases: MutableMapping[str, Any],  # rec id -> CaseState dict (a `PartitionedTable`)
        buckets: MutableMapping[str, Any],  # member_key(bucket, rec id) -> CaseSignature
        outbox: Outbox,
        metrics: RoutingMetrics,
        clock: Callable[[], datetime] = _utcnow,
        record_attempts: int = 3,
        retry_backoff: float = 0.2,
        retry_backoff_max: float = 5.0,
        ack_timeout: float = 30.0,
        stuck_after: float = 30.0,
        crash_window: float = 60.0,
    ) -> None:
        self.plumbing = Plumbing(
            outbox=outbox,
            metrics=metrics,
            record_attempts=record_attempts,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            ack_timeout=ack_timeout,
            stuck_after=stuck_after,
            crash_window=crash_window,
        )
        self.received = ReceivedStage(self.plumbing, classifier=classifier)
        self.dedup = DedupStage(self.plumbing, buckets=buckets)
        self.responses = ResponsesStage(self.plumbing)
        self.deadlines = DeadlineScan(self.plumbing, policy=policy, cases=cases, clock=clock)
        self.case_stage = CasesStage(
            self.plumbing,
            policy=policy,
            classifier=classifier,
            cases=cases,
            clock=clock,
            deadlines=self.deadlines,
            apply=_apply,
        )

    # ---------------------------------------------------------------- what the stages share

    @property
    def policy(self) -> Policy:
        """The lifecycle policy stage 3 and the deadline scan apply."""
        return self.case_stage.policy

    @property
    def classifier(self) -> Classifier:
        """The classifier of stage 1 (and of stage 3, for a triaged case's bucket)."""
        return self.received.classifier

    @property
    def cases(self) -> MutableMapping[str, Any]:
        """The `cases` table."""
        return self.case_stage.cases

    @property
    def buckets(self) -> MutableMapping[str, Any]:
        """The `bucket-members` table."""
        return self.dedup.buckets

    @property
    def outbox(self) -> Outbox:
        """Where every stage sends (replaceable: tests put a fake one in)."""
        return self.plumbing.outbox

    @outbox.setter
    def outbox(self, outbox: Outbox) -> None:
        self.plumbing.outbox = outbox

    @property
    def retry_backoff(self) -> float:
        """First backoff (seconds) of the poison policy."""
        return self.plumbing.retry_backoff

    @retry_backoff.setter
    def retry_backoff(self, seconds: float) -> None:
        self.plumbing.retry_backoff = seconds

    @property
    def metrics(self) -> RoutingMetrics:
        """The process-wide routing metrics."""
        return self.plumbing.metrics

    @property
    def health(self) -> dict[str, StageHealth]:
        """Health of each stage, by stage name."""
        return self.plumbing.health

    def problem(self) -> str | None:
        """Why readiness should fail (a stage stuck or recently crashed), or None."""
        return self.plumbing.problem()

    def record_error(self, stage: str, exc: BaseException) -> None:
        """Count an unexpected failure of a stage and keep it as the stage's last error."""
        self.plumbing.record_error(stage, exc)

    def record_crash(self, stage: str, exc: BaseException) -> None:
        """An exception escaped an agent's body (faust restarts it; readiness says so)."""
        self.plumbing.record_crash(stage, exc)

    async def dead_letter(self, record: Incoming, *, reason: str, detail: str) -> bool:
        """Send the record (or its summary) to the dead-letter topic; never raises."""
        return await self.plumbing.dead_letter(record, reason=reason, detail=detail)

    # ---------------------------------------------------------------- stages

    async def on_received(self, record: Incoming) -> None:
        """Stage 1: decode and classify a received event, send the candidate to its bucket."""
        await self.received.on_received(record)

    async def on_dedup(self, record: Incoming) -> None:
        """Stage 2: duplicate verdict within one bucket; bucket membership updates."""
        await self.dedup.on_dedup(record)

    @property
    def bucket_generation(self) -> int | None:
        """Consumer-group generation the bucket index was built for."""
        return self.dedup.generation

    def rebuild_buckets(self, *, generation: int | None) -> None:
        """Re-read the bucket-member table into the in-memory index (after a rebalance)."""
        self.dedup.rebuild(generation=generation)

    def bucket_members(self, bucket: str) -> list[CaseSignature]:
        """Signatures of the open cases of one bucket, oldest first."""
        return self.dedup.bucket_members(bucket)

    async def on_responses(self, records: Sequence[Incoming]) -> None:
        """Stage R: check a batch of inbound responses, forward them keyed by their case."""
        await self.responses.on_responses(records)

    async def on_case(self, record: Incoming) -> None:
        """Stage 3 for one record (see `on_cases`)."""
        await self.case_stage.on_case(record)

    async def on_cases(self, records: Sequence[Incoming]) -> None:
        """Stage 3: apply a batch of commands and responses; emit, await the acks, write."""
        await self.case_stage.on_cases(records)

    # ---------------------------------------------------------------- deadlines

    @property
    def due_index(self) -> dict[str, datetime]:
        """Next due instant of each local case with a deadline ahead."""
        return self.deadlines.due_index

    @property
    def index_generation(self) -> int | None:
        """Consumer-group generation the deadline index was built for."""
        return self.deadlines.generation

    def rebuild_index(self, *, active_partitions: Iterable[int], generation: int | None) -> None:
        """Re-read the local `cases` of the active partitions (after a rebalance)."""
        self.deadlines.rebuild(active_partitions=active_partitions, generation=generation)

    async def scan_due(self, *, resend_after: float = 10.0) -> int:
        """Send a `tick` for every local case with a reminder or escalation due; count them."""
        return await self.deadlines.scan_due(resend_after=resend_after)
