"""Errors of the routing service."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of routing's own errors."""


class RejectedError(RoutingError):
    """A command does not fit the case's state; `reason` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InternalMessageError(RoutingError):
    """A record on one of routing's internal topics is not what routing writes there."""
