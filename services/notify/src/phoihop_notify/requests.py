"""What requests to notify's API carry: bodies, path ids, and the checks of their values."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from phoihop_common.config import Reference
from phoihop_notify import openapi as docs
from phoihop_notify.config import EVENT_TYPES
from phoihop_notify.exceptions import InvalidSubscriptionError, ScopeNotAllowedError
from phoihop_notify.matching import JURISDICTION_ROLES, Scope
from phoihop_schemas.textpolicy import check_text

# Ids are at most 64 characters and never hold control characters (PostgreSQL refuses NUL).
Id = Annotated[str, Path(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
# The text policy of phoihop_schemas.textpolicy, and the URLs and event types notify takes,
# in the schema (documentation: the validators below decide).
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ufdd0-\\ufdef\\ufffe\\uffff]*$"
Description = Annotated[
    str,
    AfterValidator(check_text),
    Field(max_length=500, json_schema_extra={"pattern": TEXT_PATTERN}),
]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        description="absolute http(s) URL of a public address (or of a network in"
        f" `{docs.ALLOWED_NETWORKS_ENV}`)",
        json_schema_extra={"pattern": "^[hH][tT][tT][pP][sS]?://[^\\s]+$"},
    ),
]
EventTypes = Annotated[
    list[str],
    Field(
        description="[] = every event type",
        json_schema_extra={"items": {"type": "string", "enum": sorted(EVENT_TYPES)}},
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionIn(_In):
    """A new webhook endpoint."""

    url: Url
    event_types: EventTypes = Field(default_factory=list)
    scope: Scope = Scope.ADDRESSED
    description: Description | None = None


class SubscriptionPatch(_In):
    """Changes to an endpoint (only the fields given)."""

    url: Url | None = None
    event_types: EventTypes | None = None
    scope: Scope | None = None
    description: Description | None = None
    enabled: bool | None = None


def check_event_types(event_types: list[str]) -> None:
    """InvalidSubscriptionError unless every event type is known."""
    unknown = sorted(set(event_types) - EVENT_TYPES)
    if unknown:
        raise InvalidSubscriptionError(
            f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)}"
        )


def check_scope(reference: Reference, agency: str, scope: Scope) -> None:
    """ScopeNotAllowedError when `jurisdiction` is asked by a body that may not have it."""
    if scope is Scope.JURISDICTION:
        roles = set(reference.agency(agency).role)
        if not roles & JURISDICTION_ROLES:
            raise ScopeNotAllowedError(f"{agency} is not a supervisor or triage body")
