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

from phoihop_common.logs import get_logger
from phoihop_notify import store
from phoihop_notify.bodies import cloudevent_body, summary
from phoihop_notify.channels import Channel, Message, Target
from phoihop_notify.exceptions import UrlNotAllowedError
from phoihop_notify.metrics import NotifyMetrics
from phoihop_notify.policy import Outcome, Result, next_step
from phoihop_notify.settings import NotifySettings
from phoihop_notify.ssrf import check_url
from phoihop_schemas.codec import outcome_event_id
from phoihop_schemas.events import NotificationOutcome

log = get_logger(__name__)
LEASE_MARGIN = timedelta(seconds=5)  # after the request timeout, a crashed attempt is retried
GAUGE_INTERVAL = 2.0


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


class Dispatcher:
    """Polls the durable schedule (and is woken by the consumer), attempts, records outcomes."""

    def __init__(
        self,
        *,
        settings: NotifySettings,
        engine: Engine,
        channels: Mapping[str, Channel],
        metrics: NotifyMetrics,
        contacts: Mapping[str, tuple[str, ...]],
        on_outcome: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.channels = channels
        self.metrics = metrics
        self.contacts = contacts
        self.on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._buckets: dict[str, TokenBucket] = {}
        self._sem = asyncio.Semaphore(settings.dispatch_concurrency)
        self._gauges_at = 0.0

    def wake(self) -> None:
        """New deliveries exist."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch forever."""
        while True:
            try:
                done = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch_failed")
                done = 0
                await asyncio.sleep(1.0)
            if not done:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=self.settings.dispatch_interval
                    )

    async def tick(self) -> int:
        """Attempt every due delivery the rate limits allow; return how many were attempted."""
        now = datetime.now(UTC)
        due = await asyncio.to_thread(
            store.due_deliveries,
            self.engine,
            now=now,
            hold=timedelta(seconds=self.settings.order_hold),
            limit=self.settings.dispatch_batch,
        )
        allowed = [d for d in due if self._bucket(d.subscription_id).take()]
        if allowed:
            await asyncio.gather(*(self._guarded(d) for d in allowed))
        await self._update_gauges()
        return len(allowed)

    def _bucket(self, subscription_id: str) -> TokenBucket:
        bucket = self._buckets.get(subscription_id)
        if bucket is None:
            bucket = self._buckets[subscription_id] = TokenBucket(
                rate=self.settings.rate_limit_per_second
            )
        return bucket

    async def _guarded(self, due: store.Due) -> None:
        async with self._sem:
            try:
                await self.attempt(due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("attempt_failed", delivery_id=due.id)

    async def attempt(self, due: store.Due) -> Outcome | None:
        """One attempt of one delivery; None when another dispatcher took it first."""
        s = self.settings
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=s.request_timeout) + LEASE_MARGIN
        if not await asyncio.to_thread(
            store.claim, self.engine, due=due, lease_until=lease, now=now
        ):
            return None
        attempt_no = due.attempts + 1
        message = Message(
            id=due.id,
            event_type=due.event_type,
            recommendation_id=due.recommendation_id,
            body=cloudevent_body(attributes=due.attributes, data=due.data, viewer=due.agency),
            summary=summary(event_type=due.event_type, recommendation_id=due.recommendation_id),
        )
        started = time.perf_counter()
        result = await self._deliver(due, message)
        latency = time.perf_counter() - started
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
        await asyncio.to_thread(
            store.record_attempt,
            self.engine,
            due=due,
            status=status,
            next_attempt_at=next_at,
            status_code=result.status_code,
            error=result.error,
            failed=not result.ok,
            disable_reason=disable_reason,
            outcome_id=outcome_event_id(due.event_id, due.subscription_id, attempt_no),
            outcome_payload=event.model_dump(mode="json"),
            now=now,
        )
        self.metrics.deliveries.labels(due.channel, outcome.value).inc()
        self.metrics.duration.labels(due.channel).observe(latency)
        log.info(
            "delivery_attempt",
            delivery_id=due.id,
            recommendation_id=due.recommendation_id,
            event_id=due.event_id,
            subscription_id=due.subscription_id,
            attempt=attempt_no,
            outcome=outcome.value,
            status_code=result.status_code,
            error=result.error,
            next_attempt_at=next_at.isoformat() if outcome is Outcome.RETRY_SCHEDULED else None,
        )
        self.on_outcome()
        if disable_reason:
            await self._tell_contacts(due, disable_reason)
        return outcome

    async def _deliver(self, due: store.Due, message: Message) -> Result:
        channel = self.channels.get(due.channel)
        if channel is None:
            return Result(ok=False, error=f"no channel {due.channel}", permanent=True)
        if due.channel == "webhook":
            try:
                await check_url(due.target, allowed=self.settings.networks)
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
