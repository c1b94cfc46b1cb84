"""Named errors of the notify service."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of notify's errors; `reason` is machine-readable."""

    reason = "notify_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UrlNotAllowedError(NotifyError):
    """A webhook URL is malformed or resolves to an address the bus refuses to call."""

    reason = "url_not_allowed"


class NotFoundError(NotifyError):
    """No such subscription or delivery visible to the caller."""

    reason = "not_found"


class InvalidSubscriptionError(NotifyError):
    """A subscription's fields are inconsistent (unknown event type, scope not allowed)."""

    reason = "invalid_subscription"


class ScopeNotAllowedError(NotifyError):
    """Only supervisors and triage bodies may subscribe to their whole jurisdiction."""

    reason = "scope_not_allowed"


class SubscriptionConfigError(NotifyError):
    """`subscriptions.yaml` is invalid."""

    reason = "invalid_config"
