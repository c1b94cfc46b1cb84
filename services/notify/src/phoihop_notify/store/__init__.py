"""Data access of notify: keyword-only functions over one SQLAlchemy engine (run in threads).

One module per concern, every name importable from `phoihop_notify.store`:

- `base`: delivery statuses, engine and migrations, ids and secrets;
- `seeding`: the subscriptions and contacts of `subscriptions.yaml`;
- `intake`: consumed events and the deliveries they match;
- `dispatch`: due deliveries, claims, attempts' effects, gauges;
- `publishing`: the outbox of outcome events;
- `subscriptions`: the API's subscriptions;
- `replays`: the API's deliveries and their replays.
"""

from __future__ import annotations

from phoihop_notify.store.base import CANCELLED as CANCELLED
from phoihop_notify.store.base import DELIVERED as DELIVERED
from phoihop_notify.store.base import FAILED as FAILED
from phoihop_notify.store.base import PENDING as PENDING
from phoihop_notify.store.base import delivery_id as delivery_id
from phoihop_notify.store.base import make_engine as make_engine
from phoihop_notify.store.base import migrate as migrate
from phoihop_notify.store.base import new_secret as new_secret
from phoihop_notify.store.base import ping as ping
from phoihop_notify.store.dispatch import Allowance as Allowance
from phoihop_notify.store.dispatch import Attempt as Attempt
from phoihop_notify.store.dispatch import Due as Due
from phoihop_notify.store.dispatch import Recorded as Recorded
from phoihop_notify.store.dispatch import Taken as Taken
from phoihop_notify.store.dispatch import claim as claim
from phoihop_notify.store.dispatch import due_deliveries as due_deliveries
from phoihop_notify.store.dispatch import gauges as gauges
from phoihop_notify.store.dispatch import record_attempts as record_attempts
from phoihop_notify.store.dispatch import release as release
from phoihop_notify.store.dispatch import take_due as take_due
from phoihop_notify.store.intake import Consumed as Consumed
from phoihop_notify.store.intake import active_filters as active_filters
from phoihop_notify.store.intake import record_events as record_events
from phoihop_notify.store.publishing import mark_published as mark_published
from phoihop_notify.store.publishing import unpublished as unpublished
from phoihop_notify.store.replays import list_deliveries as list_deliveries
from phoihop_notify.store.replays import replay_failed_since as replay_failed_since
from phoihop_notify.store.replays import replay_one as replay_one
from phoihop_notify.store.seeding import seed as seed
from phoihop_notify.store.subscriptions import create_subscription as create_subscription
from phoihop_notify.store.subscriptions import delete_subscription as delete_subscription
from phoihop_notify.store.subscriptions import get_subscription as get_subscription
from phoihop_notify.store.subscriptions import list_subscriptions as list_subscriptions
from phoihop_notify.store.subscriptions import rotate_secret as rotate_secret
from phoihop_notify.store.subscriptions import subscription_health as subscription_health
from phoihop_notify.store.subscriptions import update_subscription as update_subscription

__all__ = [
    "CANCELLED",
    "DELIVERED",
    "FAILED",
    "PENDING",
    "Allowance",
    "Attempt",
    "Consumed",
    "Due",
    "Recorded",
    "Taken",
    "active_filters",
    "claim",
    "create_subscription",
    "delete_subscription",
    "delivery_id",
    "due_deliveries",
    "gauges",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "make_engine",
    "mark_published",
    "migrate",
    "new_secret",
    "ping",
    "record_attempts",
    "record_events",
    "release",
    "replay_failed_since",
    "replay_one",
    "rotate_secret",
    "seed",
    "subscription_health",
    "take_due",
    "unpublished",
    "update_subscription",
]
