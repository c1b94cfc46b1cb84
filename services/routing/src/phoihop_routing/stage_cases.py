"""Stage 3, `routing-cases` (ROUTING_COMMANDS + ROUTING_TIMERS, keyed by recommendation id).

Co-partitioned with the `cases` changelog, it owns the table `cases` and is the single
writer of every event with sequence >= 2. It takes a batch of records, runs
`lifecycle.apply` on each in order (a case touched twice in the batch continues from its
state earlier in the batch), sends all the resulting events, awaits the broker's
acknowledgements together, then writes the new states. Events are acknowledged *before* the
state is written, and the batch's offsets are committed only after the writes, so a crash in
between replays the batch against the old states and re-emits the same events with the same
deterministic ids (consumers de-duplicate by id); a crash after the writes finds the
commands already applied (known case, response id in `processed`, tick no longer due) and
emits nothing. A response forwarded twice (stage R replayed after a crash, or its batch
re-sent) is therefore applied once. A forwarded response rejected here (`not_assignee`,
`unknown_recommendation`, ...) is dead-lettered as the inbound record it came from
(`origin_of`: topic, partition, offset, headers of the original).

Effects between cases (a merged duplicate is linked to its open case, which may live on
another partition) are `link` commands keyed by the target case (and, when that case was
already answered, an `answer_of` command back to the duplicate; corrections exchange their
steps the same way), so each case is still written by its own partition only. Each record's
messages are all built (encoded) before any is sent, so a failing record sends nothing and
its state is not part of the batch's writes.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from phoihop_routing import internal, lifecycle
from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import bucket_key, signature
from phoihop_routing.exceptions import InternalMessageError, RejectedError
from phoihop_routing.lifecycle import (
    CaseState,
    Command,
    Effect,
    Forward,
    JoinBucket,
    LeaveBucket,
    LinkCase,
    Outcome,
    Policy,
    Respond,
    ShareAnswer,
)
from phoihop_routing.stage_base import (
    SOURCE,
    STAGE_CASES,
    Incoming,
    Plumbing,
    log,
    origin_of,
    put_partitioned,
    settle_acks,
)
from phoihop_routing.stage_deadlines import DeadlineScan
from phoihop_routing.stage_responses import decode_response
from phoihop_schemas import codec
from phoihop_schemas.events import LifecycleEvent
from phoihop_schemas.topics import CANONICAL, ROUTING_COMMANDS, ROUTING_DEDUP


class Apply(Protocol):
    """`lifecycle.apply`'s signature: one command on one case's state."""

    def __call__(
        self, state: CaseState | None, command: Command, *, policy: Policy, now: datetime
    ) -> Outcome: ...


@dataclass(frozen=True)
class _Message:
    """One record stage 3 sends (built, encoded, before anything of its command is sent)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    event: LifecycleEvent | None = None

    @classmethod
    def internal(cls, *, topic: str, key: str, message: internal.InternalMessage) -> _Message:
        """An internal command (plain JSON, `phoihop_internal` header)."""
        value, headers = internal.encode(message)
        return cls(topic, key.encode(), value, headers)

    @classmethod
    def of_event(cls, event: LifecycleEvent) -> _Message:
        """A lifecycle event, to its canonical topic (CloudEvents, binary mode)."""
        rec = codec.encode(event, source=SOURCE)
        topic = CANONICAL[type(event).event_name].name
        return cls(topic, rec.key, rec.value, list(rec.headers), event)


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


def command_of(record: Incoming) -> tuple[str, Command]:
    """The case a stage-3 record is about and the command it carries.

    A record with CloudEvents headers (or without the internal header) is a response
    forwarded by stage R; anything else is one of routing's internal commands.
    """
    if record.header("ce_type") is not None or record.header(internal.INTERNAL_HEADER) is None:
        response = decode_response(record)
        return response.recommendation_id, Respond(response=response)
    message = internal.decode_case(record.value)
    return message.target, message.command()


class CasesStage:
    """Stage 3: apply commands and responses to the cases; emit, await the acks, then write."""

    def __init__(
        self,
        plumbing: Plumbing,
        *,
        policy: Policy,
        classifier: Classifier,
        cases: MutableMapping[str, Any],
        clock: Callable[[], datetime],
        deadlines: DeadlineScan,
        apply: Apply = lifecycle.apply,
    ) -> None:
        self.plumbing = plumbing
        self.policy = policy
        self.classifier = classifier  # a triaged case's signature when it joins its bucket
        self.cases = cases  # rec id -> CaseState dict (a `PartitionedTable`)
        self.clock = clock
        self.deadlines = deadlines  # told every state written
        self.apply = apply

    async def on_case(self, record: Incoming) -> None:
        """Stage 3 for one record (see `on_cases`)."""
        await self.on_cases([record])

    async def on_cases(self, records: Sequence[Incoming]) -> None:
        """Apply a batch of commands and responses; emit, await the acks, then write.

        Commands are applied in order, each to the state its case reached earlier in the
        batch; every event of the batch is sent, the broker's acknowledgements are awaited
        together, and only then is each changed case written (to the changelog partition of
        the record that changed it). The offsets are committed after the batch, so a crash
        before the writes replays the whole batch against the old states and re-emits the
        same event ids. A record that fails is dead-lettered alone (`Plumbing.guarded`) and
        takes no part in the writes; when acknowledgements fail, the batch is run again from
        the old states (without the records dead-lettered meanwhile) until they all succeed.
        """
        p = self.plumbing
        done: set[int] = set()  # dead-lettered: not run again when the batch is re-run
        attempt = 0
        while True:
            batch = _CaseBatch()
            for index, record in enumerate(records):
                if index in done:
                    continue
                work = functools.partial(self._case, record, batch, index=index)
                # a forwarded response fails as the inbound record it came from
                ok = await p.guarded(STAGE_CASES, origin_of(record), work)
                if not ok:
                    done.add(index)
            failed = await batch.settle()  # durable before the state says they happened
            if not failed:
                break
            attempt += 1
            await p.acks_failed(STAGE_CASES, records, failed, done=done, attempt=attempt)
        p.health[STAGE_CASES].retrying_since = None
        for event in batch.emitted:
            self._count(event)
        for partition, state in batch.writes.values():
            put_partitioned(
                self.cases, state.recommendation_id, state.to_dict(), partition=partition
            )
            self.deadlines.index(state)

    async def _case(self, record: Incoming, batch: _CaseBatch, *, index: int) -> bool:
        started = time.perf_counter()
        p = self.plumbing
        rejected = origin_of(record)  # what a dead letter names: the inbound record, if any
        try:
            rec_id, command = command_of(record)
        except (codec.DecodeError, RejectedError) as exc:
            await p.dead_letter(rejected, reason=exc.reason, detail=exc.detail)
            return False
        except (InternalMessageError, KeyError, TypeError, ValueError) as exc:
            await p.dead_letter(rejected, reason="bad_internal_message", detail=str(exc))
            return False
        state = batch.state(rec_id)
        if state is None:
            raw = self.cases.get(rec_id)
            state = CaseState.from_dict(raw) if raw else None
        try:
            outcome = self.apply(state, command, policy=self.policy, now=self.clock())
        except RejectedError as exc:
            await p.dead_letter(rejected, reason=exc.reason, detail=exc.detail)
            return False
        # everything is encoded before anything is sent: a record that fails sends nothing
        messages = self._messages(outcome)
        for message in messages:
            ack = await p.outbox.send(
                topic=message.topic, key=message.key, value=message.value, headers=message.headers
            )
            p.metrics.service.produced.labels(message.topic).inc()
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
        p.processed(record, started=started)
        return True

    def _messages(self, outcome: Outcome) -> list[_Message]:
        """The records an outcome sends: its events, then its effects' internal commands."""
        out = [_Message.of_event(event) for event in outcome.events]
        for effect in outcome.effects:
            message = self._effect(effect, outcome.state)
            if message is not None:
                out.append(message)
        return out

    def _count(self, event: LifecycleEvent) -> None:
        name = type(event).event_name
        m = self.plumbing.metrics
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

    def _effect(self, effect: Effect, state: CaseState | None) -> _Message | None:
        """The internal command an effect sends (to the case or bucket it is about)."""
        commands = ROUTING_COMMANDS.name
        if isinstance(effect, LinkCase):
            link = internal.LinkMessage(
                recommendation_id=effect.target,
                merged_id=effect.merged_id,
                submitted_by=effect.submitted_by,
            )
            return _Message.internal(topic=commands, key=effect.target, message=link)
        if isinstance(effect, Forward):
            step = internal.CorrectionMessage(
                recommendation_id=effect.target, correction=effect.command
            )
            return _Message.internal(topic=commands, key=effect.target, message=step)
        if isinstance(effect, ShareAnswer):
            # keyed by the duplicate: its own partition emits its `answered` (lifecycle doc)
            answer = internal.AnswerOfMessage(
                recommendation_id=effect.target,
                source_case=effect.source_case,
                agency=effect.agency,
                text=effect.text,
                on_time=effect.on_time,
            )
            return _Message.internal(topic=commands, key=effect.target, message=answer)
        if isinstance(effect, LeaveBucket):
            leave = internal.LeaveMessage(
                bucket=effect.bucket, recommendation_id=effect.recommendation_id
            )
            return _Message.internal(topic=ROUTING_DEDUP.name, key=effect.bucket, message=leave)
        if isinstance(effect, JoinBucket) and state is not None:
            return self._join(state)
        return None

    def _join(self, state: CaseState) -> _Message:
        """A triaged case joins the bucket of its classification now."""
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
        join = internal.JoinMessage(bucket=bucket, signature=sig)
        return _Message.internal(topic=ROUTING_DEDUP.name, key=bucket, message=join)
