"""`subscriptions.yaml`: webhook subscriptions and people's email contacts, validated."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phoihop_common.config import ConfigError, Reference, read_yaml
from phoihop_notify.matching import Scope
from phoihop_schemas.events import LIFECYCLE_EVENTS

NAMESPACE = uuid.UUID("0b7d0c55-2f4f-4a8e-9a52-6e6f74696679")
EVENT_TYPES = frozenset(m.event_name for m in LIFECYCLE_EVENTS)
EMAIL_EVENT_TYPES = ("escalated", "reminded")
Secret = Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]
Email = Annotated[str, Field(pattern=r"^[^@\s,]+@[^@\s,]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConfigSubscription(_Model):
    """A webhook subscription declared in config."""

    agency: str
    url: str
    secret: Secret
    event_types: tuple[str, ...] = ()
    scope: Scope = Scope.ADDRESSED
    id: str | None = None
    description: str | None = None

    @property
    def key(self) -> str:
        """Stable id: given, or derived from agency and URL."""
        return self.id or str(uuid.uuid5(NAMESPACE, f"config/{self.agency}/{self.url}"))


class SubscriptionsFile(_Model):
    """The whole file."""

    subscriptions: tuple[ConfigSubscription, ...] = ()
    contacts: dict[str, tuple[Email, ...]] = Field(default_factory=dict)


def email_subscription_id(agency: str) -> str:
    """Stable id of the email subscription of an agency's contacts."""
    return str(uuid.uuid5(NAMESPACE, f"contacts/{agency}"))


def load_subscriptions(config_dir: Path, *, reference: Reference) -> SubscriptionsFile:
    """Load and check `subscriptions.yaml` (absent file = nothing configured)."""
    path = config_dir / "subscriptions.yaml"
    if not path.is_file():
        return SubscriptionsFile()
    try:
        doc = SubscriptionsFile.model_validate(read_yaml(path) or {})
    except ValidationError as exc:
        raise ConfigError(f"invalid {path}: {exc}") from exc
    known = reference.agency_codes
    for sub in doc.subscriptions:
        if sub.agency not in known:
            raise ConfigError(f"{path}: unknown agency {sub.agency}")
        unknown = set(sub.event_types) - EVENT_TYPES
        if unknown:
            raise ConfigError(f"{path}: unknown event types {sorted(unknown)}")
    for agency in doc.contacts:
        if agency not in known:
            raise ConfigError(f"{path}: unknown agency {agency} in contacts")
    return doc
