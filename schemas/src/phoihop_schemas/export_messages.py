"""The messages of the contract: every event model, its CloudEvents type and its topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from phoihop_schemas.codec import INBOUND_MODELS
from phoihop_schemas.events import EVENT_MODELS, LifecycleEvent
from phoihop_schemas.export_rules import SCHEMA_BASE
from phoihop_schemas.topics import (
    ALL_TOPICS,
    RESPONSE_CE_TYPE,
    SUBMISSION_CE_TYPE,
    Role,
    Topic,
    ce_type_for,
)


@dataclass(frozen=True)
class Message:
    """One message of the document: its id, model, CloudEvents type and topic."""

    name: str
    model: type[BaseModel]
    ce_type: str
    topic: Topic

    @property
    def lifecycle(self) -> bool:
        """Whether the message carries a per-recommendation `sequence`."""
        return issubclass(self.model, LifecycleEvent)

    @property
    def inbound(self) -> bool:
        """Whether agencies write it."""
        return self.topic.role is Role.INBOUND


def message_models() -> dict[str, tuple[type[BaseModel], str]]:
    """Every message model by file stem, with its CloudEvents type."""
    out: dict[str, tuple[type[BaseModel], str]] = {
        name: (model, ce_type_for(name)) for name, model in EVENT_MODELS.items()
    }
    out["inbound_submission"] = (INBOUND_MODELS[SUBMISSION_CE_TYPE], SUBMISSION_CE_TYPE)
    out["inbound_response"] = (INBOUND_MODELS[RESPONSE_CE_TYPE], RESPONSE_CE_TYPE)
    return out


def contract_messages() -> list[Message]:
    """The messages of every inbound and canonical topic of the registry, in its order."""
    stem_of = {ce_type: stem for stem, (_model, ce_type) in message_models().items()}
    out = []
    for topic in ALL_TOPICS:
        if topic.role not in (Role.INBOUND, Role.CANONICAL) or topic.ce_type is None:
            continue
        stem = stem_of[topic.ce_type]
        out.append(Message(stem, message_models()[stem][0], topic.ce_type, topic))
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of each message's `data`."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, (model, ce_type) in message_models().items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{SCHEMA_BASE}/{stem}.json"
        schema["x-cloudevents-type"] = ce_type
        schemas[stem] = schema
    return schemas
