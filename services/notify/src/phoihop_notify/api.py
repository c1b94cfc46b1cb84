"""HTTP API: agencies manage their webhook subscriptions and deliveries (X-API-Key).

`router` holds the `/v1` routes (each needs the key), `operations` the probes and metrics.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from phoihop_common.errors import METRICS_ROUTE, Health, error_responses
from phoihop_common.http import READINESS_RESPONSES, Readiness, readiness, readiness_response
from phoihop_common.metrics import metrics_response
from phoihop_notify import openapi as docs
from phoihop_notify import store
from phoihop_notify.deps import AgencyDep, RuntimeDep
from phoihop_notify.matching import Scope
from phoihop_notify.requests import (
    Id,
    SubscriptionIn,
    SubscriptionPatch,
    check_event_types,
    check_scope,
)
from phoihop_notify.runtime import Runtime
from phoihop_notify.ssrf import check_url

# Every /v1 route authenticates; these statuses can answer any of them.
router = APIRouter(prefix="/v1", responses=error_responses(401))
# Probes and the Prometheus exposition: no key.
operations = APIRouter()
NOT_FOUND = {404: "No such subscription or delivery of the caller's (`not_found`)."}
INVALID = {
    422: "A field is invalid (`invalid_request`), an event type unknown"
    " (`invalid_subscription`), or the URL refused (`url_not_allowed`: not an absolute"
    f" http(s) URL, or a private address outside `{docs.ALLOWED_NETWORKS_ENV}`)."
}
SCOPE = {403: "`scope: jurisdiction` is for supervisors and triage bodies (`scope_not_allowed`)."}


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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
    check_event_types(body.event_types)
    check_scope(runtime.reference, agency, body.scope)
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
        check_event_types(changes["event_types"])
    if changes.get("scope") is not None:
        check_scope(runtime.reference, agency, Scope(changes["scope"]))
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


@operations.get("/healthz", tags=["operations"], response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@operations.get(
    "/readyz", tags=["operations"], response_model=Readiness, responses=READINESS_RESPONSES
)
async def readyz(request: Request) -> JSONResponse:
    """200 once Kafka clients run, partitions are assigned and the database answers."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return readiness_response(readiness(starting=True))
    return readiness_response(await runtime.ready())


@operations.get("/metrics", tags=["operations"], **METRICS_ROUTE)
async def metrics_endpoint() -> Response:
    """Prometheus exposition."""
    return metrics_response()
