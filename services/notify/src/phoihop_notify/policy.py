"""What happens after one delivery attempt: the retry schedule as a pure function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Outcome(StrEnum):
    """Outcome of one attempt (the values of `NotificationOutcome.outcome`)."""

    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Result:
    """What a channel reports about one attempt."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from a 429/503 `Retry-After`
    gone: bool = False  # 410: the endpoint asks never to be called again
    permanent: bool = False  # retrying cannot help (refused URL)


@dataclass(frozen=True)
class Step:
    """The decision: outcome and, when retrying, the time of the next attempt."""

    outcome: Outcome
    next_attempt_at: datetime | None = None


def next_step(
    *,
    result: Result,
    attempt_in_round: int,
    schedule: Sequence[float],
    now: datetime,
    max_retry_after: float,
) -> Step:
    """Decide after attempt number `attempt_in_round` (1-based) of the current round."""
    if result.ok:
        return Step(Outcome.DELIVERED)
    if result.gone:
        return Step(Outcome.DISABLED)
    if result.permanent or attempt_in_round >= len(schedule):
        return Step(Outcome.DEAD_LETTERED)
    delay = schedule[attempt_in_round]
    if result.retry_after is not None:
        delay = min(max(result.retry_after, 0.0), max_retry_after)
    return Step(Outcome.RETRY_SCHEDULED, now + timedelta(seconds=delay))


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds(), 0.0)
