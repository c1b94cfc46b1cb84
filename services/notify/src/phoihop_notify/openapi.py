"""Notify's OpenAPI document: what the API answers, and the webhooks it sends (`webhooks`).

Each lifecycle event type is one OpenAPI webhook: a structured-mode CloudEvent
(`application/cloudevents+json`) whose `data` is the event, signed by Standard Webhooks
headers; its responses say what the receiver's status codes make notify do, with this
deployment's retry schedule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Header
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from phoihop_notify.settings import NotifySettings
from phoihop_schemas.events import LIFECYCLE_EVENTS, LifecycleEvent, Received, Reporter
from phoihop_schemas.topics import ce_type_for

CLOUDEVENTS_JSON = "application/cloudevents+json"
ALLOWED_NETWORKS_ENV = "PHOIHOP_NOTIFY_ALLOWED_NETWORKS"

DESCRIPTION = f"""\
Agencies manage their webhook subscriptions here and look at, or replay, what was
delivered. Every `/v1` route needs the agency's `X-API-Key` and shows only that agency's
subscriptions and deliveries.

**What is delivered** is described under `webhooks`: one POST per lifecycle event, a
structured CloudEvent (`Content-Type: application/cloudevents+json`) signed with the
Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`; verify it
with any Standard Webhooks library and the subscription's `whsec_` secret). A subscription
with `scope: addressed` gets the events that concern its agency; `scope: jurisdiction`
(supervisors and triage bodies only) gets every event.

Webhook URLs must be absolute http(s) URLs resolving to public addresses: a private,
loopback or link-local address is refused (`422 url_not_allowed`) unless the operator lists
its network in `{ALLOWED_NETWORKS_ENV}` (comma-separated CIDRs, e.g. `10.20.0.0/16`).
"""
TAGS = [
    {"name": "subscriptions", "description": "Webhook endpoints of the caller's agency."},
    {"name": "deliveries", "description": "What was sent, the dead-letter store, replays."},
    {"name": "operations", "description": "Liveness, readiness, metrics (no key)."},
]

# Who an `addressed` subscription of an agency receives each event type for.
ADDRESSEES: dict[str, str] = {
    "received": "the submitting agency",
    "merged": "the agency that submitted the merged recommendation, and the agency that"
    " merged it by hand (`merged_by`, when a person merged it)",
    "unmerged": "the submitting agency (`recipients`) and the agency that undid the merge"
    " (`agency`)",
    "assigned": "the assignee",
    "duplicate_suggested": "the assignee and the triage body (`recipients`)",
    "duplicate_dismissed": "the agency that dismissed the suggestion (`agency`)",
    "accepted": "the assignee",
    "declined": "the agency that declined",
    "answered": "the sources that get the answer (`recipients`: submitters, merged ones included)",
    "reminded": "the assignee",
    "escalated": "the supervisors on that level of the ladder (`recipients`)",
    "extended": "the assignee",
    "reopened": "the assignee",
    "closed": "nobody: only `jurisdiction` subscriptions receive it",
}


# --------------------------------------------------------------------------- API answers


class Subscription(BaseModel):
    """A webhook endpoint (or an email subscription from config) of the caller's agency."""

    id: str
    agency: str
    channel: str = Field(description="`webhook` or `email`")
    url: str | None
    event_types: list[str] = Field(description="[] = every event type")
    scope: Literal["addressed", "jurisdiction"]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="why notify disabled it (410, failures)")
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="until then the old secret signs too (after a rotation)"
    )
    source: str = Field(description="`api` or `config`")
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription):
    """A new endpoint or a rotated secret: the secret is shown this once."""

    secret: str = Field(description="Standard Webhooks secret, `whsec_` + base64")


class Subscriptions(BaseModel):
    """The caller's endpoints."""

    items: list[Subscription]


class Delivery(BaseModel):
    """One event to one endpoint: its attempts and where it stands."""

    id: str = Field(description="the `webhook-id` it is sent with")
    event_id: str
    event_type: str
    subscription_id: str
    recommendation_id: str
    sequence: int | None
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class Deliveries(BaseModel):
    """The caller's deliveries, newest first."""

    items: list[Delivery]


class Replayed(BaseModel):
    """How many dead-lettered deliveries were scheduled again."""

    replayed: int


class ReplayScheduled(BaseModel):
    """One delivery scheduled again, now."""

    id: str
    status: Literal["pending"]


# --------------------------------------------------------------------------- webhooks


class ReceivedDelivered(Received):
    """`received` as delivered: the reporter in clear where the access policy allows it."""

    # narrower on purpose: the delivered body carries the reporter decrypted, not the envelope
    reporter: Reporter | None = None  # type: ignore[assignment]


class CloudEventBase(BaseModel):
    """A structured-mode CloudEvent 1.0 as notify POSTs it."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(description="the event id (the same for every subscriber)")
    source: str = Field(description="the service that wrote it, e.g. `/phoihop/routing`")
    subject: str = Field(description="the recommendation id")
    time: datetime
    datacontenttype: Literal["application/json"]
    sequence: str = Field(description="the event's lifecycle sequence (1, 2, 3 …)")


def _data_model(model: type[LifecycleEvent]) -> type[BaseModel]:
    return ReceivedDelivered if model is Received else model


def cloudevent_model(model: type[LifecycleEvent]) -> type[BaseModel]:
    """The CloudEvent carrying one event type."""
    name = model.event_name
    ce_type: Any = Literal.__getitem__(ce_type_for(name))  # Literal["vn.phoihop…"]
    return create_model(
        f"{model.__name__}CloudEvent",
        __base__=CloudEventBase,
        __doc__=f"The `{name}` event as a structured CloudEvent.",
        type=(ce_type, Field(description="the CloudEvents type")),
        data=(_data_model(model), ...),
    )


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        return f"{value / 60:g} min"
    return f"{value / 3600:g} h"


def delivery_rules(settings: NotifySettings) -> str:
    """What notify does after each answer, with this deployment's numbers."""
    schedule = ", ".join(_seconds(s) for s in settings.retry_schedule)
    days = settings.disable_after.total_seconds() / 86400
    return f"""\
Retries follow this deployment's schedule: the attempts are made {schedule} after the
previous one ({settings.max_attempts} attempts in all, the first counted from the event).
Each attempt times out after {settings.request_timeout:g} s; redirects are not followed.
After the last attempt fails the delivery is dead-lettered: `GET /v1/deliveries?status=failed`
lists it, `POST /v1/deliveries/{{id}}/replay` or `/v1/deliveries/replay?since=` sends it again.
An endpoint failing for {days:g} days in a row is disabled (its deliveries wait; re-enable it
with `PATCH /v1/subscriptions/{{id}}` `{{"enabled": true}}`).

The events of one recommendation reach an endpoint in `sequence` order (a delivery waits up
to {settings.order_hold:g} s for the earlier ones). `webhook-id` is the same on every retry
and replay: a receiver that already processed it should answer 2xx again and do nothing.
"""


def install_webhooks(app: FastAPI, settings: NotifySettings) -> None:
    """One `webhooks` entry per lifecycle event type, in `app.openapi()`."""
    rules = delivery_rules(settings)
    max_wait = _seconds(settings.max_retry_after)
    responses: dict[int | str, dict[str, Any]] = {
        410: {
            "description": "Gone: the subscription is disabled at once; its deliveries wait"
            " until the agency re-enables it."
        },
        429: {
            "description": "Too many requests: the next attempt waits `Retry-After` (seconds"
            f" or an HTTP date, at most {max_wait}) instead of the schedule; 503 likewise."
        },
        "default": {
            "description": "Any other status, a timeout or a connection failure: retried on"
            " the schedule, then dead-lettered."
        },
    }
    for model in LIFECYCLE_EVENTS:
        name = model.event_name
        app.webhooks.add_api_route(
            name,
            _receiver(cloudevent_model(model)),
            methods=["POST"],
            name=f"webhook_{name}",
            operation_id=f"webhook_{name}",
            response_class=Response,
            response_description="Delivered (any 2xx status): nothing more is sent for it.",
            summary=f"`{name}`: {model.__doc__.splitlines()[0] if model.__doc__ else name}",
            description=f"Sent to `addressed` subscriptions of {ADDRESSEES.get(name, '…')};"
            f" to every `jurisdiction` subscription.\n\n{rules}",
            responses=responses,
            tags=["webhooks"],
        )


Receiver = Callable[..., Awaitable[None]]


def _receiver(event: type[BaseModel]) -> Receiver:
    async def receive(
        body: BaseModel,
        webhook_id: Annotated[
            str,
            Header(
                alias="webhook-id",
                description="unique per event and subscription; the same on every retry",
            ),
        ],
        webhook_timestamp: Annotated[
            str,
            Header(alias="webhook-timestamp", description="Unix time of this attempt"),
        ],
        webhook_signature: Annotated[
            str,
            Header(
                alias="webhook-signature",
                description="`v1,<base64 HMAC-SHA256 of id.timestamp.body>`; two of them,"
                " space-separated, while a rotated secret overlaps",
            ),
        ],
    ) -> None:
        """Documentation only: the agency's endpoint."""

    # set here: under `from __future__ import annotations` a local name cannot be resolved
    receive.__annotations__["body"] = Annotated[event, Body(media_type=CLOUDEVENTS_JSON)]
    return receive
