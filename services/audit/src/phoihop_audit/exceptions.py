"""Errors of the audit service."""

from __future__ import annotations

# A signing or encryption key is missing or unreadable, or a reporter does not decrypt.
from phoihop_common.pii import KeyConfigError as KeyConfigError


class AuditError(Exception):
    """Base of the audit service's errors."""


class EventConflictError(AuditError):
    """An event id is already stored with different content."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} already stored with different content")
        self.event_id = event_id


class NotFoundError(AuditError):
    """The thing asked for does not exist (or is outside the caller's scope)."""


class BadRequestError(AuditError):
    """A query parameter is invalid; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ForbiddenError(AuditError):
    """The caller is known but its role does not allow the request."""


class TooManyRequestsError(AuditError):
    """An expensive request is refused for now; `retry_after` is in seconds."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
