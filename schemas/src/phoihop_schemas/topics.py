"""The one topic registry: every topic the bus uses, who writes it, what it carries."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from phoihop_schemas.events import EVENT_MODELS

# One cluster can carry several deployments (or test runs): topic names share a prefix.
PREFIX = os.environ.get("PHOIHOP_TOPIC_PREFIX", "phoihop")


class Role(StrEnum):
    """Who may write a topic."""

    INBOUND = "inbound"  # agencies' systems and the ingest HTTP API
    CANONICAL = "canonical"  # only the bus's services
    INTERNAL = "internal"  # one service's own plumbing
    DEAD_LETTER = "dead_letter"


# The edge's size limit (`codec.MAX_MESSAGE_BYTES`, which codec cannot share without an
# import cycle; tests/ops pins the two equal): the broker refuses larger inbound records.
INBOUND_MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Topic:
    """A topic: name, role, the CloudEvents type it carries, partitions group, size limit."""

    name: str
    role: Role
    ce_type: str | None
    keyed_by_recommendation: bool = True
    max_message_bytes: int | None = None  # None: the broker's default

    @property
    def config(self) -> dict[str, str]:
        """Topic-level configuration to create the topic with (Kafka config names)."""
        if self.max_message_bytes is None:
            return {}
        return {"max.message.bytes": str(self.max_message_bytes)}


def ce_type_for(event_name: str) -> str:
    """CloudEvents `type` attribute of a canonical event."""
    if event_name == "notification_outcome":
        return "vn.phoihop.notification.outcome.v1"
    return f"vn.phoihop.recommendation.{event_name}.v1"


SUBMISSION_CE_TYPE = "vn.phoihop.inbound.submission.v1"
RESPONSE_CE_TYPE = "vn.phoihop.inbound.response.v1"

INBOUND_SUBMISSIONS = Topic(
    f"{PREFIX}.inbound.submissions",
    Role.INBOUND,
    SUBMISSION_CE_TYPE,
    False,
    max_message_bytes=INBOUND_MAX_MESSAGE_BYTES,
)
INBOUND_RESPONSES = Topic(
    f"{PREFIX}.inbound.responses",
    Role.INBOUND,
    RESPONSE_CE_TYPE,
    max_message_bytes=INBOUND_MAX_MESSAGE_BYTES,
)
DEAD_LETTER = Topic(f"{PREFIX}.deadletter", Role.DEAD_LETTER, None, False)
ROUTING_TIMERS = Topic(f"{PREFIX}.routing.timers", Role.INTERNAL, "vn.phoihop.routing.timer.v1")
ROUTING_DEDUP = Topic(f"{PREFIX}.routing.dedup", Role.INTERNAL, None, False)  # keyed by bucket
ROUTING_COMMANDS = Topic(f"{PREFIX}.routing.commands", Role.INTERNAL, None)  # keyed by rec id
NOTIFY_RETRY = Topic(f"{PREFIX}.notify.retry", Role.INTERNAL, None)


def canonical_topic(event_name: str) -> Topic:
    """Topic of one canonical event type."""
    if event_name == "notification_outcome":
        return Topic(f"{PREFIX}.notification.outcome", Role.CANONICAL, ce_type_for(event_name))
    return Topic(f"{PREFIX}.recommendation.{event_name}", Role.CANONICAL, ce_type_for(event_name))


CANONICAL: dict[str, Topic] = {name: canonical_topic(name) for name in EVENT_MODELS}
CE_TYPE_TO_EVENT: dict[str, str] = {t.ce_type: name for name, t in CANONICAL.items() if t.ce_type}

LIFECYCLE_TOPICS: tuple[Topic, ...] = tuple(
    t for name, t in CANONICAL.items() if name != "notification_outcome"
)

ALL_TOPICS: tuple[Topic, ...] = (
    INBOUND_SUBMISSIONS,
    INBOUND_RESPONSES,
    *CANONICAL.values(),
    ROUTING_TIMERS,
    ROUTING_DEDUP,
    ROUTING_COMMANDS,
    NOTIFY_RETRY,
    DEAD_LETTER,
)

# Topics keyed by recommendation id that routing keeps co-partitioned with its `cases` table
# (same count). `inbound.responses` is not one of them: agencies' producers may partition it
# any way they like; routing re-keys each response onto `routing.commands`.
CO_PARTITIONED: tuple[Topic, ...] = (
    CANONICAL["received"],
    ROUTING_TIMERS,
    ROUTING_COMMANDS,
)


def by_name(name: str) -> Topic:
    """Look a topic up by name."""
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(name)
