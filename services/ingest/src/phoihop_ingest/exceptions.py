"""Errors of the ingest service; each maps to one HTTP status and a machine reason."""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """Base: `reason` is machine-readable, `detail` explains, `status` is the HTTP status."""

    status = 400

    def __init__(self, reason: str, detail: Any = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BadRequest(IngestError):
    """The request could not be parsed."""

    status = 400


class Unauthorized(IngestError):
    """No or an unknown API key."""

    status = 401


class Forbidden(IngestError):
    """The caller may not do this."""

    status = 403


class NotFound(IngestError):
    """The recommendation is unknown (or not visible to the caller)."""

    status = 404


class PayloadTooLarge(IngestError):
    """The request body exceeds the limit."""

    status = 413


class UnsupportedMediaType(IngestError):
    """The bulk import format is not recognised."""

    status = 415


class ValidationFailed(IngestError):
    """The submission or response is invalid."""

    status = 422


class Unavailable(IngestError):
    """A dependency (broker, audit, database) is unreachable; the client should retry."""

    status = 503


class BrokerUnavailable(Unavailable):
    """The broker did not acknowledge in time."""


class AuditUnavailable(Unavailable):
    """Audit did not answer."""


class StoreUnavailable(Unavailable):
    """The idempotency database is unreachable."""
