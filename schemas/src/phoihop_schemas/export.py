"""Generate JSON Schema for every event and an AsyncAPI 3 document from the models.

`python -m phoihop_schemas.export schemas/generated` (or `make schemas`) rewrites the
checked-in files; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from phoihop_schemas.codec import INBOUND_MODELS
from phoihop_schemas.events import EVENT_MODELS
from phoihop_schemas.topics import (
    CANONICAL,
    DEAD_LETTER,
    INBOUND_RESPONSES,
    INBOUND_SUBMISSIONS,
    RESPONSE_CE_TYPE,
    SUBMISSION_CE_TYPE,
    Topic,
    ce_type_for,
)

SCHEMA_BASE = "https://phoihop.example/schemas"


def _models() -> dict[str, tuple[type[BaseModel], str]]:
    """Every message model by file stem, with its CloudEvents type."""
    out: dict[str, tuple[type[BaseModel], str]] = {
        name: (model, ce_type_for(name)) for name, model in EVENT_MODELS.items()
    }
    out["inbound_submission"] = (INBOUND_MODELS[SUBMISSION_CE_TYPE], SUBMISSION_CE_TYPE)
    out["inbound_response"] = (INBOUND_MODELS[RESPONSE_CE_TYPE], RESPONSE_CE_TYPE)
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of each message's `data`."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, (model, ce_type) in _models().items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{SCHEMA_BASE}/{stem}.json"
        schema["x-cloudevents-type"] = ce_type
        schemas[stem] = schema
    return schemas


_CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binary content mode: attributes as ce_* headers.",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string"},
        "ce_source": {"type": "string"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "recommendation id (= Kafka key)"},
        "ce_sequence": {"type": "string", "description": "per-recommendation sequence"},
        "content-type": {"type": "string", "const": "application/json"},
    },
}


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 document: channels = topics, messages = CloudEvents with JSON data."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas = json_schemas()
    topic_of: dict[str, Topic] = {name: t for name, t in CANONICAL.items()}
    topic_of["inbound_submission"] = INBOUND_SUBMISSIONS
    topic_of["inbound_response"] = INBOUND_RESPONSES
    for stem, (_model, ce_type) in _models().items():
        topic = topic_of[stem]
        msg_name = stem
        messages[msg_name] = {
            "name": msg_name,
            "title": ce_type,
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
            "payload": {"$ref": f"#/components/schemas/{stem}"},
            "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
        }
        channel_id = topic.name.replace(".", "_")
        channels[channel_id] = {
            "address": topic.name,
            "description": f"{topic.role.value} topic carrying {ce_type}",
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
        }
        action = "send" if topic.role.value == "inbound" else "receive"
        operations[f"{action}_{stem}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": (
                f"Agencies' systems publish {stem}"
                if action == "send"
                else f"Agencies may subscribe to {stem}"
            ),
        }
    channels["dead_letter"] = {
        "address": DEAD_LETTER.name,
        "description": "Records that could not be processed; reason in dlq_* headers",
    }
    components_schemas: dict[str, Any] = {"CloudEventHeaders": _CE_HEADERS}
    for stem, schema in schemas.items():
        body = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
        components_schemas[stem] = body
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "phoihop event bus",
            "version": "1.0.0",
            "description": "Voters' recommendations and citizens' feedback between provincial "
            "bodies. CloudEvents 1.0 over Kafka, binary mode, key = recommendation id.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components_schemas},
    }


def render() -> dict[str, str]:
    """File name → content of every generated file."""
    files = {
        f"jsonschema/{stem}.json": json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for stem, schema in json_schemas().items()
    }
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return files


def write(target: Path) -> list[Path]:
    """Write every generated file under `target`."""
    written = []
    for rel, content in render().items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/generated")
    for p in write(out):
        print(p)
