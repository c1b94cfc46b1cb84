"""Deliver due deliveries from the database: durable schedule, ordering, rate limit, outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from phoihop_common.config import Reference
from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher
from phoihop_notify import store
from phoihop_notify.bodies import BodyCache, summary
from phoihop_notify.channels import Channel, Message, Target
from phoihop_notify.exceptions import UrlNotAllowedError
from phoihop_notify.metrics import NotifyMetrics
from phoihop_notify.policy import Outcome, Result, next_step
from phoihop_notify.settings import NotifySettings
from phoihop_notify.ssrf import UrlGuard
from phoihop_schemas.codec import outcome_event_id
from phoihop_schemas.events import NotificationOutcome

log = get_logger(__name__)
LEASE_MARGIN = timedelta(seconds=5)  # after the request timeout, a crashed attempt is retried
GAUGE_INTERVAL = 2.0
RECORD_BATCH = 500  # finished attempts written per transaction, at most


@dataclass
class TokenBucket:
    """Per-endpoint rate limit: `rate` sends per second, bursts up to `rate`."""

    rate: float
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic()
        capacity = max(self.rate, 1.0)
        if self.tokens < 0:
            self.tokens = capacity
        self.tokens = min(capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def empty(self) -> bool:
        """True when no token is available now (nothing is spent)."""
        return self.available() < 1

    def available(self) -> int:
        """Whole tokens available now (nothing is spent)."""
        capacity = max(self.rate, 1.0)
        if self.tokens < 0:
            return int(capacity)
        return int(min(capacity, self.tokens + (time.monotonic() - self.stamp) * self.rate))


@dataclass
class Endpoint:
    """What the dispatcher tracks about one subscription: its rate limit and attempts in flight."""

    bucket: TokenBucket
    in_flight: int = 0


class Dispatcher:
    """Claims due deliveries in batches, attempts them concurrently, records outcomes in batches.

    The durable schedule is the database: a claim is a lease (a crashed attempt becomes due
    again), an outcome is written with its effect. Order per (endpoint, recommendation) holds
    because a delivery is only due once the earlier ones of its case are no longer pending, and
    a finished attempt stays pending until its outcome is recorded; everything else (other
    endpoints, other recommendations of the same endpoint) goes out concurrently, up to
    `dispatch_concurrency` attempts, `endpoint_concurrency` per endpoint, within each
    endpoint's rate limit.
    """

    def __init__(
        self,
        *,
        settings: NotifySettings,
        engine: Engine,
        channels: Mapping[str, Channel],
        metrics: NotifyMetrics,
        contacts: Mapping[str, tuple[str, ...]],
        on_outcome: Callable[[], None],
        cipher: PiiCipher,
        reference: Reference,
    ) -> None:
        self.settings = settings
        self.cipher = cipher
        self.reference = reference  # the access policy decides who gets the reporter
        self.engine = engine
        self.channels = channels
        self.metrics = metrics
        self.contacts = contacts
        self.on_outcome = on_outcome
        self.guard = UrlGuard(allowed=settings.networks)
        self._wake = asyncio.Event()
        self._endpoints: dict[str, Endpoint] = {}
        self._in_flight: dict[str, store.Due] = {}  # delivery id -> claimed delivery
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Queue[store.Attempt] = asyncio.Queue()
        self._gauges_at = 0.0
        self._starved = False  # the last look left due deliveries for want of free slots
        self._bodies = BodyCache()
        self._more = False  # the last look may have left due deliveries behind (full batch)

    def wake(self) -> None:
        """New deliveries exist, or earlier ones finished."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Attempts claimed and not yet recorded."""
        return len(self._in_flight)

    async def run(self) -> None:
        """Dispatch forever; on cancellation, give back the claims of unfinished attempts."""
        recorder = asyncio.create_task(self._record_forever(), name="notify-recorder")
        try:
            while True:
                try:
                    started = await self.dispatch_once()
                    await self._update_gauges()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("dispatch_failed")
                    started = 0
                    await asyncio.sleep(1.0)
                # Look again at once only when the last look may have left something due;
                # else wait for a wake-up (new deliveries, recorded outcomes) or the poll.
                if not started or not (self._more or self._starved):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self._idle_for())
        finally:
            recorder.cancel()
            await self._shutdown(recorder)

    async def dispatch_once(self) -> int:
        """Claim what may go now and start its attempts; return how many were started."""
        # Cleared before looking, so a wake-up during the query is not lost.
        self._wake.clear()
        s = self.settings
        room = s.dispatch_concurrency - len(self._in_flight)
        self._starved = room <= 0
        self._more = False
        if room <= 0:
            return 0
        now = datetime.now(UTC)
        busy = [sid for sid, ep in self._endpoints.items() if not self._can_send(ep)]
        self._starved = self._starved or any(
            ep.in_flight >= s.endpoint_concurrency for ep in self._endpoints.values()
        )
        limit = min(s.dispatch_batch, room)
        allowance = store.Allowance(
            room=room,
            slots={
                sid: s.endpoint_concurrency - ep.in_flight for sid, ep in self._endpoints.items()
            },
            tokens={sid: ep.bucket.available() for sid, ep in self._endpoints.items()},
            fresh_slots=s.endpoint_concurrency,
            fresh_tokens=TokenBucket(rate=s.rate_limit_per_second).available(),
        )
        taken = await asyncio.to_thread(
            store.take_due,
            self.engine,
            now=now,
            hold=timedelta(seconds=s.order_hold),
            limit=limit,
            allowance=allowance,
            lease_until=now + timedelta(seconds=s.request_timeout) + LEASE_MARGIN,
            skip_subscriptions=busy,
            skip_ids=list(self._in_flight),
        )
        self._more = taken.full
        self._starved = self._starved or taken.starved
        for d in taken.claimed:
            ep = self._endpoint(d.subscription_id)
            ep.in_flight += 1
            # the allowance counted whole tokens, and nothing else spent any since
            ep.bucket.take()
            self._in_flight[d.id] = d
            task = asyncio.create_task(self._attempt_safely(d))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(taken.claimed)

    def _idle_for(self) -> float:
        """How long to wait for a wake-up: the poll interval, or until a token is back."""
        wait = self.settings.dispatch_interval
        if any(ep.bucket.empty() for ep in self._endpoints.values()):
            wait = min(wait, 1.0 / max(self.settings.rate_limit_per_second, 1e-3))
        return max(wait, 0.001)

    def _can_send(self, ep: Endpoint) -> bool:
        return ep.in_flight < self.settings.endpoint_concurrency and not ep.bucket.empty()

    def _endpoint(self, subscription_id: str) -> Endpoint:
        ep = self._endpoints.get(subscription_id)
        if ep is None:
            ep = self._endpoints[subscription_id] = Endpoint(
                bucket=TokenBucket(rate=self.settings.rate_limit_per_second)
            )
        return ep

    async def _attempt_safely(self, due: store.Due) -> None:
        try:
            finished = await self.attempt(due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a claim without a recorded outcome
            log.exception("attempt_failed", delivery_id=due.id)
            finished = self._judge(
                due,
                Result(ok=False, error=f"internal: {type(exc).__name__}"),
                latency=0.0,
            )
        self._finished.put_nowait(finished)

    async def attempt(self, due: store.Due) -> store.Attempt:
        """Make one attempt of a claimed delivery; return its effect (not yet recorded)."""
        message = Message(
            id=due.id,
            event_type=due.event_type,
            recommendation_id=due.recommendation_id,
            body=self._bodies.body(
                event_id=due.event_id,
                attributes=due.attributes,
                data=due.data,
                viewer=due.agency,
                cipher=self.cipher,
                reference=self.reference,
            ),
            summary=summary(event_type=due.event_type, recommendation_id=due.recommendation_id),
        )
        started = time.perf_counter()
        result = await self._deliver(due, message)
        latency = time.perf_counter() - started
        return self._judge(due, result, latency=latency)

    def _judge(self, due: store.Due, result: Result, *, latency: float) -> store.Attempt:
        """Outcome, next attempt time and outcome event of a finished attempt."""
        s = self.settings
        attempt_no = due.attempts + 1
        now = datetime.now(UTC)
        step = next_step(
            result=result,
            attempt_in_round=attempt_no - due.round_start,
            schedule=s.retry_schedule,
            now=now,
            max_retry_after=s.max_retry_after,
        )
        outcome = step.outcome
        disable_reason: str | None = None
        if outcome is Outcome.DISABLED:
            disable_reason = "endpoint answered 410 Gone"
        elif (
            not result.ok
            and due.failing_since is not None
            and now - due.failing_since >= s.disable_after
        ):
            outcome = Outcome.DISABLED
            disable_reason = f"failing since {due.failing_since.isoformat()}"
        status, next_at = {
            Outcome.DELIVERED: (store.DELIVERED, now),
            Outcome.RETRY_SCHEDULED: (store.PENDING, step.next_attempt_at or now),
            Outcome.DEAD_LETTERED: (store.FAILED, now),
            # Kept pending: it goes out once the agency re-enables the endpoint.
            Outcome.DISABLED: (store.PENDING, now),
        }[outcome]
        event = NotificationOutcome(
            recommendation_id=due.recommendation_id,
            event_id=due.event_id,
            event_type=due.event_type,
            subscription_id=due.subscription_id,
            agency=due.agency,
            channel="email" if due.channel == "email" else "webhook",
            attempt=attempt_no,
            outcome=outcome.value,
            status_code=result.status_code,
            latency_ms=round(latency * 1000, 3),
            error=result.error,
            attempted_at=now,
        )
        self.metrics.deliveries.labels(due.channel, outcome.value).inc()
        self.metrics.duration.labels(due.channel).observe(latency)
        return store.Attempt(
            due=due,
            attempt=attempt_no,
            status=status,
            next_attempt_at=next_at,
            status_code=result.status_code,
            error=result.error,
            failed=not result.ok,
            disable_reason=disable_reason,
            outcome_id=outcome_event_id(due.event_id, due.subscription_id, attempt_no),
            outcome_payload=event.model_dump(mode="json"),
            at=now,
        )

    async def _record_forever(self) -> None:
        """Write finished attempts in batches, then free their slots and wake the dispatcher."""
        while True:
            await self._finished_waiting()
            batch: list[store.Attempt] = []
            while not self._finished.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._finished.get_nowait())
            while True:
                try:
                    recorded = await asyncio.to_thread(
                        store.record_attempts, self.engine, attempts=batch
                    )
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # keep the batch (and its slots) until it is stored
                    log.exception("record_failed", attempts=len(batch))
                    await asyncio.sleep(1.0)
            self._recorded(batch, recorded=recorded)

    async def _finished_waiting(self) -> None:
        """Return once a finished attempt is queued and `record_linger` has passed.

        The attempts stay in the queue meanwhile, so a shutdown during the wait still finds
        and records them.
        """
        first = await self._finished.get()
        self._finished.put_nowait(first)  # at the end, but order does not matter
        if self.settings.record_linger > 0:
            await asyncio.sleep(self.settings.record_linger)

    def _recorded(self, batch: list[store.Attempt], *, recorded: store.Recorded) -> None:
        disabled = recorded.disabled
        soon = datetime.now(UTC) + timedelta(seconds=self.settings.dispatch_interval)
        told: set[str] = set()
        for a in batch:
            due = a.due
            self._in_flight.pop(due.id, None)
            self._endpoint(due.subscription_id).in_flight -= 1
            outcome = a.outcome_payload["outcome"]
            log.info(
                "delivery_attempt",
                delivery_id=due.id,
                recommendation_id=due.recommendation_id,
                event_id=due.event_id,
                subscription_id=due.subscription_id,
                attempt=a.attempt,
                outcome=outcome,
                status_code=a.status_code,
                error=a.error,
                next_attempt_at=(
                    a.next_attempt_at.isoformat()
                    if outcome == Outcome.RETRY_SCHEDULED.value
                    else None
                ),
            )
            sid = due.subscription_id
            if a.disable_reason and sid in disabled and sid not in told:
                told.add(sid)
                task = asyncio.create_task(self._tell_contacts(due, a.disable_reason))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.on_outcome()
        # Look again at once only when this batch can have made something sendable: freed
        # slots the dispatcher was short of, a later event of a finished case, a quick retry.
        if (
            self._starved
            or recorded.unblocked
            or any(a.status == store.PENDING and a.next_attempt_at <= soon for a in batch)
        ):
            self.wake()

    async def _shutdown(self, recorder: asyncio.Task[None]) -> None:
        """Stop attempts; record what finished; give back claims of what did not."""
        with contextlib.suppress(asyncio.CancelledError):
            await recorder
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        finished: list[store.Attempt] = []
        while not self._finished.empty():
            finished.append(self._finished.get_nowait())
        done = {a.due.id for a in finished}
        unfinished = [d for i, d in self._in_flight.items() if i not in done]
        try:
            if finished:
                await asyncio.to_thread(store.record_attempts, self.engine, attempts=finished)
                self.on_outcome()
            await asyncio.to_thread(
                store.release, self.engine, items=unfinished, now=datetime.now(UTC)
            )
        except Exception:  # their leases expire and they are attempted again
            log.exception("shutdown_record_failed")
        self._in_flight.clear()

    async def _deliver(self, due: store.Due, message: Message) -> Result:
        channel = self.channels.get(due.channel)
        if channel is None:
            return Result(ok=False, error=f"no channel {due.channel}", permanent=True)
        if due.channel == "webhook":
            try:
                await self.guard.check(due.target)
            except UrlNotAllowedError as exc:
                return Result(ok=False, error=f"url_not_allowed: {exc.detail}", permanent=True)
        return await channel.deliver(
            target=Target(address=due.target, secrets=due.secrets), message=message
        )

    async def _tell_contacts(self, due: store.Due, reason: str) -> None:
        """Email the agency's contacts that its endpoint was disabled (best effort, logged)."""
        emails = self.contacts.get(due.agency, ())
        channel = self.channels.get("email")
        log.warning(
            "endpoint_disabled",
            subscription_id=due.subscription_id,
            agency=due.agency,
            reason=reason,
            contacts=len(emails),
        )
        if not emails or channel is None or due.channel == "email":
            return
        body = {
            "subscription_id": due.subscription_id,
            "agency": due.agency,
            "url": due.target,
            "reason": reason,
            "action": 'PATCH /v1/subscriptions/{id} {"enabled": true} re-enables it',
        }
        result = await channel.deliver(
            target=Target(address=",".join(emails)),
            message=Message(
                id=str(uuid.uuid4()),
                event_type="endpoint_disabled",
                recommendation_id=due.recommendation_id,
                body=json.dumps(body, ensure_ascii=False).encode(),
                summary=f"[phoihop] Webhook endpoint disabled / đã tạm dừng: {due.target}",
            ),
        )
        if not result.ok:
            log.warning("contacts_not_told", agency=due.agency, error=result.error)

    async def _update_gauges(self) -> None:
        if time.monotonic() - self._gauges_at < GAUGE_INTERVAL:
            return
        self._gauges_at = time.monotonic()
        retrying, disabled = await asyncio.to_thread(store.gauges, self.engine)
        self.metrics.retry_queue_depth.set(retrying)
        self.metrics.endpoints_disabled.set(disabled)
