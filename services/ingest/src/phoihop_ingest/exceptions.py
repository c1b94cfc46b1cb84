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


class BadRequestError(IngestError):
    """The request could not be parsed."""

    status = 400


class UnauthorizedError(IngestError):
    """No or an unknown API key."""

    status = 401


class ForbiddenError(IngestError):
    """The caller may not do this."""

    status = 403


class NotFoundError(IngestError):
    """The recommendation is unknown (or not visible to the caller)."""

    status = 404


class ConflictError(IngestError):
    """The action does not fit the case's current status."""

    status = 409


class PayloadTooLargeError(IngestError):
    """The request body exceeds the limit."""

    status = 413


class UnsupportedMediaTypeError(IngestError):
    """The body's media type (or the bulk import format) is not supported."""

    status = 415


class InvalidInputError(IngestError):
    """The submission or response is invalid."""

    status = 422


class UnavailableError(IngestError):
    """A dependency (broker, audit, database) is unreachable; the client should retry."""

    status = 503


class BrokerUnavailableError(UnavailableError):
    """The broker did not acknowledge in time."""


class AuditUnavailableError(UnavailableError):
    """Audit did not answer."""


class StoreUnavailableError(UnavailableError):
    """The idempotency database is unreachable."""
