"""HTTP API: agencies manage their webhook subscriptions and deliveries (X-API-Key)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from phoihop_common.errors import api_key_header, error_responses, unauthorized
from phoihop_notify import openapi as docs
from phoihop_notify import store
from phoihop_notify.config import EVENT_TYPES
from phoihop_notify.exceptions import InvalidSubscriptionError, ScopeNotAllowedError
from phoihop_notify.matching import JURISDICTION_ROLES, Scope
from phoihop_notify.runtime import Runtime
from phoihop_notify.ssrf import check_url
from phoihop_schemas.textpolicy import check_text

# Every /v1 route authenticates; these statuses can answer any of them.
router = APIRouter(prefix="/v1", responses=error_responses(401))
NOT_FOUND = {404: "No such subscription or delivery of the caller's (`not_found`)."}
INVALID = {
    422: "A field is invalid (`invalid_request`), an event type unknown"
    " (`invalid_subscription`), or the URL refused (`url_not_allowed`: not an absolute"
    f" http(s) URL, or a private address outside `{docs.ALLOWED_NETWORKS_ENV}`)."
}
SCOPE = {403: "`scope: jurisdiction` is for supervisors and triage bodies (`scope_not_allowed`)."}


def get_runtime(request: Request) -> Runtime:
    """The running service."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_agency(
    runtime: RuntimeDep, key: Annotated[str | None, Security(api_key_header)]
) -> str:
    """The agency owning the presented API key; 401 `missing_api_key` or `invalid_api_key`."""
    agency = runtime.api_keys.agency_for(key)
    if agency is None:
        raise unauthorized(key)
    return agency


AgencyDep = Annotated[str, Depends(current_agency)]
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


def _now() -> datetime:
    return datetime.now(UTC)


def _check_types(event_types: list[str]) -> None:
    unknown = sorted(set(event_types) - EVENT_TYPES)
    if unknown:
        raise InvalidSubscriptionError(
            f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)}"
        )


def _check_scope(runtime: Runtime, agency: str, scope: Scope) -> None:
    if scope is Scope.JURISDICTION:
        roles = set(runtime.reference.agency(agency).role)
        if not roles & JURISDICTION_ROLES:
            raise ScopeNotAllowedError(f"{agency} is not a supervisor or triage body")


@router.post(
    "/subscriptions",
    status_code=201,
    tags=["subscriptions"],
    response_model=docs.SubscriptionWithSecret,
    responses=error_responses(400, 403, 422, notes=SCOPE | INVALID),
)
async def create_subscription(
    body: SubscriptionIn, agency: AgencyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Create an endpoint; the response carries its secret, shown this once."""
    _check_types(body.event_types)
    _check_scope(runtime, agency, body.scope)
    await check_url(body.url, allowed=runtime.settings.networks)
    return await asyncio.to_thread(
        store.create_subscription,
        runtime.engine,
        agency=agency,
        url=body.url,
        event_types=body.event_types,
        scope=body.scope,
        description=body.description,
        now=_now(),
    )


@router.get("/subscriptions", tags=["subscriptions"], response_model=docs.Subscriptions)
async def list_subscriptions(agency: AgencyDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The caller's endpoints."""
    items = await asyncio.to_thread(store.list_subscriptions, runtime.engine, agency=agency)
    return {"items": items}


@router.get(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    response_model=docs.Subscription,
    responses=error_responses(404, 422, notes=NOT_FOUND),
)
async def get_subscription(
    subscription_id: Id, agency: AgencyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """One of the caller's endpoints."""
    return await asyncio.to_thread(
        store.get_subscription, runtime.engine, agency=agency, subscription_id=subscription_id
    )


@router.patch(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    response_model=docs.Subscription,
    responses=error_responses(400, 403, 404, 422, notes=SCOPE | NOT_FOUND | INVALID),
)
async def update_subscription(
    subscription_id: Id, body: SubscriptionPatch, agency: AgencyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Change an endpoint; `enabled: true` re-enables a disabled one."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("event_types") is not None:
        _check_types(changes["event_types"])
    if changes.get("scope") is not None:
        _check_scope(runtime, agency, Scope(changes["scope"]))
    if changes.get("url") is not None:
        await check_url(changes["url"], allowed=runtime.settings.networks)
    changes = {k: v for k, v in changes.items() if v is not None or k == "description"}
    return await asyncio.to_thread(
        store.update_subscription,
        runtime.engine,
        agency=agency,
        subscription_id=subscription_id,
        changes=changes,
        now=_now(),
    )


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    tags=["subscriptions"],
    responses=error_responses(404, 422, notes=NOT_FOUND),
)
async def delete_subscription(subscription_id: Id, agency: AgencyDep, runtime: RuntimeDep) -> None:
    """Delete an endpoint; its pending deliveries are cancelled."""
    await asyncio.to_thread(
        store.delete_subscription,
        runtime.engine,
        agency=agency,
        subscription_id=subscription_id,
        now=_now(),
    )


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    tags=["subscriptions"],
    response_model=docs.SubscriptionWithSecret,
    responses=error_responses(404, 422, notes=NOT_FOUND),
)
async def rotate_secret(
    subscription_id: Id,
    agency: AgencyDep,
    runtime: RuntimeDep,
    overlap_seconds: Annotated[int, Query(ge=0, le=30 * 86_400)] = 86_400,
) -> dict[str, Any]:
    """New secret (returned once); both signatures are sent until the overlap ends."""
    return await asyncio.to_thread(
        store.rotate_secret,
        runtime.engine,
        agency=agency,
        subscription_id=subscription_id,
        overlap=timedelta(seconds=overlap_seconds),
        now=_now(),
    )


@router.get(
    "/deliveries",
    tags=["deliveries"],
    response_model=docs.Deliveries,
    responses=error_responses(422),
)
async def list_deliveries(
    agency: AgencyDep,
    runtime: RuntimeDep,
    status: Literal["pending", "delivered", "failed", "cancelled"] | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's deliveries (`status=failed`: the dead-letter store)."""
    items = await asyncio.to_thread(
        store.list_deliveries,
        runtime.engine,
        agency=agency,
        status=status,
        since=_aware(since),
        limit=limit,
    )
    return {"items": items}


@router.post(
    "/deliveries/replay",
    status_code=202,
    tags=["deliveries"],
    response_model=docs.Replayed,
    responses=error_responses(422),
)
async def replay_since(agency: AgencyDep, runtime: RuntimeDep, since: datetime) -> dict[str, Any]:
    """Send again everything of the caller's that was dead-lettered since `since`."""
    count = await asyncio.to_thread(
        store.replay_failed_since,
        runtime.engine,
        agency=agency,
        since=_aware(since) or _now(),
        now=_now(),
    )
    runtime.wake_dispatcher()
    return {"replayed": count}


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=202,
    tags=["deliveries"],
    response_model=docs.ReplayScheduled,
    responses=error_responses(404, 422, notes=NOT_FOUND),
)
async def replay_one(delivery_id: Id, agency: AgencyDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Send one message again (same `webhook-id`)."""
    result = await asyncio.to_thread(
        store.replay_one, runtime.engine, agency=agency, delivery_id=delivery_id, now=_now()
    )
    runtime.wake_dispatcher()
    return result


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
