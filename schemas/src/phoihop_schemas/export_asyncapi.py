"""The AsyncAPI 3 document: an agency's system as a client of the bus.

It *sends* to the inbound topics and *receives* from the canonical topics and the
dead-letter topic. The bus's internal topics (routing timers, duplicate buckets, routing
commands, notify retries) are its own plumbing, not a contract: they are left out and
listed in `info.description`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from phoihop_schemas.codec import MAX_MESSAGE_BYTES, SUBMISSION_ID_NAMESPACE
from phoihop_schemas.events import MAX_TEXT_CHARS
from phoihop_schemas.export_examples import (
    dead_letter_example,
    example,
    example_events,
    example_record,
)
from phoihop_schemas.export_headers import (
    DEAD_LETTER_SUMMARY,
    ce_headers_schema,
    dead_letter_headers_schema,
)
from phoihop_schemas.export_messages import Message, contract_messages
from phoihop_schemas.export_rules import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    REPORTER_REQUIRED_KINDS,
    SAMPLE_LOCALITIES,
)
from phoihop_schemas.topics import (
    ALL_TOPICS,
    DEAD_LETTER,
    INBOUND_SUBMISSIONS,
    PREFIX,
    Role,
    Topic,
    ce_type_for,
)

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"

INTERNAL_NOTE = (
    "Internal topics (the bus's own plumbing, not part of this contract; do not read or "
    "write them): {names}."
)


def _submission_description() -> str:
    kinds = ", ".join(f"`{k.value}`" for k in REPORTER_REQUIRED_KINDS)
    localities = ", ".join(f"`{c}`" for c in SAMPLE_LOCALITIES)
    return f"""A new recommendation, complaint or denunciation sent by an agency's system.

Rules (a record breaking one goes to the dead-letter topic with the reason in `dlq_reason`):

- **Size**: the record value is at most {MAX_MESSAGE_BYTES} bytes (256 KiB,
  `phoihop_schemas.codec.MAX_MESSAGE_BYTES`); the topic refuses larger records
  (`max.message.bytes`) and consumers dead-letter them (`oversized`). `text` holds at most
  {MAX_TEXT_CHARS} characters, NFC-normalised; NUL, other control characters, lone
  surrogates and BMP noncharacters are refused, not cleaned.
- **reporter** is required for {kinds} (`reporter_required`); a denouncer's identity is
  encrypted at rest and never shown to the body denounced.
- **locality** is the code of an administrative unit of the deployment
  (`deploy/config/admin_units.yaml`; `unknown_locality` otherwise). The sample province:
  {localities}.
- **submitted_by** must be the sending agency's own code (`deploy/config/agencies.yaml`;
  `unknown_agency` otherwise): it is the source that receives the answer and the scope of
  the idempotency key.
- **submitted_at** (optional) lies between 2000-01-01 and ten minutes from now; a bare date
  or naive time is Vietnam time (UTC+7).

**Recommendation id.** The bus derives it, so the sender can compute it too:
`uuid5(ID_NAMESPACE, f"{{submitted_by}}\\x1f{{key}}")` with
`ID_NAMESPACE = {SUBMISSION_ID_NAMESPACE}` and `key` = `idempotency_key`, else
`source_ref`, else `ce:<ce_id header>`, cut to {MAX_IDEMPOTENCY_KEY_CHARS} characters. It is
returned as `recommendation_id` (and `ce_subject`, and Kafka key) of the `received` event on
`{_topic_of("received")}`. The same key sent again with the same content is a duplicate and
yields no second `received`; with different content it is dead-lettered
(`idempotency_key_reused`)."""


def _topic_of(event_name: str) -> str:
    """Topic name of a canonical event."""
    return next(t.name for t in ALL_TOPICS if t.ce_type == ce_type_for(event_name))


def _message_description(message: Message) -> str:
    if message.name == "inbound_submission":
        return _submission_description()
    doc = (message.model.__doc__ or "").strip()
    if message.name == "inbound_response":
        return (
            f"{doc}\n\nKafka key = `recommendation_id` (records keyed otherwise are "
            "dead-lettered with `key_mismatch`). `response_id` is the agency's own id of the "
            "response: a response applied once is skipped when re-sent. The value is at most "
            f"{MAX_MESSAGE_BYTES} bytes; the outcome shows up as a canonical event "
            "(accepted, declined, answered, extended, closed, reopened) or a dead letter."
        )
    return doc


def _key_binding(topic: Topic) -> dict[str, Any]:
    if topic is INBOUND_SUBMISSIONS:
        key = {
            "type": "string",
            "description": "Free; the idempotency key is recommended. The bus derives the "
            "recommendation id itself (see the message description).",
        }
    elif topic.keyed_by_recommendation:
        key = {"type": "string", "description": "the recommendation id (UTF-8)"}
    else:
        key = {"type": "string", "description": "the original record's key, if any"}
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}


def _channel_id(topic: Topic) -> str:
    return topic.name.removeprefix(f"{PREFIX}.").replace(".", "_")


def _channel(topic: Topic, *, message_id: str, description: str) -> dict[str, Any]:
    kafka: dict[str, Any] = {"bindingVersion": KAFKA_BINDING}
    if topic.max_message_bytes is not None:
        kafka["topicConfiguration"] = {"max.message.bytes": topic.max_message_bytes}
    return {
        "address": topic.name,
        "title": topic.name,
        "description": description,
        "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {"kafka": kafka},
    }


def _operation(
    *, action: str, channel_id: str, message_id: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "summary": summary,
        "description": description,
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
    }


def _payload_schemas(messages: list[Message]) -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    """Component name of each payload model, and every schema with refs into components."""
    # One generation for all models: pydantic gives colliding class names distinct keys.
    keys, top = models_json_schema(
        [(m.model, "validation" if m.inbound else "serialization") for m in messages],
        ref_template=SCHEMA_REF,
    )
    names: dict[type[BaseModel], str] = {}
    for (model, _mode), ref in keys.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            names[model] = ref["$ref"].rsplit("/", 1)[1]
    defs: dict[str, Any] = top.get("$defs", {})
    return names, defs


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 document: channels = topics, messages = CloudEvents with JSON data."""
    messages = contract_messages()
    names, components_schemas = _payload_schemas(messages)
    examples = example_events()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    component_messages: dict[str, Any] = {}

    def add_schema(name: str, schema: dict[str, Any]) -> str:
        if name in components_schemas:
            raise ValueError(f"component schema {name!r} defined twice")
        components_schemas[name] = schema
        return SCHEMA_REF.format(model=name)

    for index, message in enumerate(messages):
        payload_name = names[message.model]
        headers_ref = add_schema(
            f"{payload_name}Headers",
            ce_headers_schema(
                ce_type=message.ce_type, lifecycle=message.lifecycle, inbound=message.inbound
            ),
        )
        component_messages[message.name] = {
            "name": message.name,
            "title": message.ce_type,
            "summary": (message.model.__doc__ or "").strip().splitlines()[0],
            "description": _message_description(message),
            "contentType": "application/json",
            "headers": {"$ref": headers_ref},
            "payload": {"$ref": SCHEMA_REF.format(model=payload_name)},
            "bindings": _key_binding(message.topic),
            "examples": [
                example(
                    name=f"{message.name}_{n}",
                    summary=summary,
                    record=example_record(model, index=index * 10 + n),
                )
                for n, (summary, model) in enumerate(examples[message.name], start=1)
            ],
        }
        channel_id = _channel_id(message.topic)
        role = "Inbound" if message.inbound else "Canonical"
        writer = "agencies' systems (and the ingest HTTP API)" if message.inbound else "the bus"
        channels[channel_id] = _channel(
            message.topic,
            message_id=message.name,
            description=f"{role} topic carrying `{message.ce_type}`, written by {writer}.",
        )
        if message.inbound:
            operations[f"send_{message.name}"] = _operation(
                action="send",
                channel_id=channel_id,
                message_id=message.name,
                summary=f"An agency's system sends {message.name.replace('_', ' ')}s",
                description="Produce with acks=all; the outcome shows up as a canonical "
                "event or a dead letter.",
            )
        else:
            operations[f"receive_{message.name}"] = _operation(
                action="receive",
                channel_id=channel_id,
                message_id=message.name,
                summary=f"An agency's system receives `{message.name}` events",
                description="Consume in the agency's own consumer group; de-duplicate on "
                "ce_id (delivery is at least once). Events of one recommendation keep "
                "their order (key = recommendation id).",
            )

    dlq_headers = add_schema("DeadLetterHeaders", dead_letter_headers_schema())
    summary_ref = add_schema("DeadLetterSummary", DEAD_LETTER_SUMMARY)
    component_messages["dead_letter"] = {
        "name": "dead_letter",
        "title": "dead letter",
        "summary": "A record some consumer could not process, with the reason in dlq_* headers",
        "description": "The original record, byte for byte, with its key and headers, plus "
        "dlq_* headers. Its value is usually JSON, but not when the reason is `bad_json`; "
        f"over {MAX_MESSAGE_BYTES} bytes it is replaced by a DeadLetterSummary "
        "(`dlq_value_truncated: 1`). A submission is dead-lettered by ingest with its "
        "reason: watch this topic for records whose `ce_source` is yours.",
        "headers": {"$ref": dlq_headers},
        "payload": {
            "description": "the original value, or a DeadLetterSummary",
            "anyOf": [{"$ref": summary_ref}, {"description": "the original value as sent"}],
        },
        "bindings": _key_binding(DEAD_LETTER),
        "examples": [dead_letter_example()],
    }
    dlq_channel = _channel_id(DEAD_LETTER)
    channels[dlq_channel] = _channel(
        DEAD_LETTER,
        message_id="dead_letter",
        description="Records that could not be processed; the reason is in dlq_* headers.",
    )
    operations["receive_dead_letter"] = _operation(
        action="receive",
        channel_id=dlq_channel,
        message_id="dead_letter",
        summary="An agency's system watches the dead letters of what it sent",
        description="Filter on ce_source or submitted_by: the topic carries every "
        "service's dead letters.",
    )
    internal = ", ".join(f"`{t.name}`" for t in ALL_TOPICS if t.role is Role.INTERNAL)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:phoihop:event-bus",
        "info": {
            "title": "phoihop event bus",
            "version": "1.0.0",
            "description": "Voters' recommendations and citizens' feedback, complaints and "
            "denunciations between provincial bodies. CloudEvents 1.0 over Kafka in binary "
            "content mode (ce_* headers, JSON data); Kafka key = recommendation id, so one "
            "recommendation's events keep their order.\n\n"
            "This document describes an agency's system as a client of the bus: it sends "
            "to the inbound topics and receives from the canonical topics and the "
            "dead-letter topic. Topic names carry the deployment's prefix "
            f"(`{PREFIX}` here, `PHOIHOP_TOPIC_PREFIX`). " + INTERNAL_NOTE.format(names=internal),
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded default (`make run`): a Kafka-protocol broker "
                "on loopback, PLAINTEXT, no authentication. For one machine only.",
            },
            "production": {
                "host": "kafka-0.example:9093",
                "protocol": "kafka-secure",
                "description": "Placeholder for a production cluster (Apache Kafka, 3+ "
                "brokers; bootstrap kafka-0.example:9093, kafka-1.example:9093, "
                "kafka-2.example:9093): SASL_SSL with SCRAM-SHA-512, one principal per agency.",
                "security": [{"$ref": "#/components/securitySchemes/saslScram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": components_schemas,
            "messages": component_messages,
            "securitySchemes": {
                "saslScram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS (security.protocol=SASL_SSL), "
                    "one principal per agency.",
                }
            },
        },
    }
