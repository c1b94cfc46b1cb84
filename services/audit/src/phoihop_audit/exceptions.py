"""Errors of the audit service."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit service's errors."""


class KeyConfigError(AuditError):
    """A signing or encryption key is missing or unreadable."""


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
