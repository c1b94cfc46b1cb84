"""Ingest's OpenAPI document: the request bodies its routes read by hand, from the models.

The routes take the raw `Request` (to bound a body's size and depth before parsing it), so
FastAPI cannot see their bodies; `openapi_extra` on each route names the body and
`install` adds the models' JSON Schemas under `components/schemas`, with this deployment's
codes (localities, categories) and an example of each body. The answers are the models
below and `phoihop_common.errors.ErrorBody`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from phoihop_common.config import Reference
from phoihop_common.errors import ErrorItem
from phoihop_ingest import responses
from phoihop_ingest.bulk import XLSX_TYPE
from phoihop_ingest.validation import REPORTER_REQUIRED
from phoihop_schemas.codec import MAX_KEY_CHARS, SUBMISSION_ID_NAMESPACE
from phoihop_schemas.events import Submission

DESCRIPTION = f"""\
Agencies' systems submit recommendations (one, or a session's batch) and answer the ones
assigned to them. Every route but the operations ones needs the agency's `X-API-Key`.

Rules a body must also meet (a refusal is `{{"error": <reason>, "detail": ...}}`):

- the body is at most 256 KiB (`PHOIHOP_INGEST_MAX_BODY_BYTES`; `413 payload_too_large`),
  UTF-8 JSON (`400 invalid_json`) of media type `application/json` (`415`);
- `locality` is an administrative unit code of this deployment (`422 unknown_locality`);
- a `khieu_nai` (complaint) or `to_cao` (denunciation) names its `reporter`
  (`422 reporter_required`): anonymous ones are not handled; a denouncer's identity is
  encrypted at once and never shown to the body denounced;
- text has no control characters and at most 20,000 characters (`text_too_long`).

The recommendation id is returned (`202 {{"id"}}`). With an `Idempotency-Key` (else the
body's `source_ref`) a retry returns the same id (`Idempotent-Replayed: true`), and the id
is `uuid5({SUBMISSION_ID_NAMESPACE}, "<agency>\\x1f<key>")` — the same id a submission on
the Kafka inbound topic gets, whose key is its `idempotency_key` (else `source_ref`) and
whose agency is its `submitted_by` (without either, Kafka uses `ce:<the CloudEvent id>`;
over HTTP the id is then random). Audit finds a submission again by
`GET /v1/recommendations?source_ref=...`.
"""
TAGS = [
    {"name": "submissions", "description": "New recommendations, one or a batch."},
    {"name": "responses", "description": "An agency's answer to a case: accept, answer …"},
    {"name": "operations", "description": "Liveness, readiness, metrics (no key)."},
]

REF = "#/components/schemas/{model}"
EXAMPLE_TEXT = "Cử tri đề nghị sửa chữa tuyến đường liên thôn đã xuống cấp."
BODY_MODELS: tuple[type[BaseModel], ...] = (
    Submission,
    *dict.fromkeys(model for _action, model, _who in responses.ACTIONS.values()),
)


class SchemaConflictError(Exception):
    """Two models define different schemas under the same component name."""


# --------------------------------------------------------------------------- answers


class Accepted(BaseModel):
    """`202` of a submission: it is durably on the bus."""

    id: str = Field(description="the recommendation id (a UUID)")


class ResponseAccepted(BaseModel):
    """`202` of a response: it is on the inbound responses topic."""

    response_id: str = Field(description="deterministic with an Idempotency-Key")


class BulkRow(BaseModel):
    """One row's result: its id, or why it was refused."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(description="line (JSON lines) or spreadsheet row (CSV, XLSX; header = 1)")
    id: str | None = Field(default=None, description="the recommendation id when accepted")
    duplicate: bool | None = Field(default=None, description="true: submitted before")
    error: str | None = Field(default=None, description="the reason when refused")
    detail: str | list[ErrorItem] | None = None


class BulkReport(BaseModel):
    """The result of a batch, row by row; `error` and `detail` when it was interrupted."""

    model_config = ConfigDict(extra="forbid")

    accepted: int
    rejected: int
    results: list[BulkRow]
    error: str | None = Field(
        default=None, description="why the import stopped (`broker_unavailable` …)"
    )
    detail: str | None = None


IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a retry with the same key gets the same answer (printable text)",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route that reads `model` as its JSON body."""
    required = any(field.is_required() for field in model.model_fields.values())
    schema = {"$ref": REF.format(model=model.__name__)}
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


BULK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The batch as the raw body (the format from `?format=`, else the Content-Type) or"
            " as the multipart field `file` (the format from the file name's extension)."
            " Each row or line holds a submission's fields; CSV and XLSX may flatten the"
            " reporter as `reporter_name`, `reporter_phone`, `reporter_address`."
        ),
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one Submission object per line"}
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": (
                        "UTF-8 (a BOM is allowed), a header row naming the columns,"
                        " delimiter `,`, `;` or tab; dates as yyyy-mm-dd or dd/mm/yyyy"
                    ),
                }
            },
            XLSX_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "the first sheet, a header row naming the columns",
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


def component_schemas() -> dict[str, Any]:
    """The JSON Schemas of every documented body and the schemas they refer to, by name."""
    found: dict[str, Any] = {}
    for model in BODY_MODELS:
        schema = model.model_json_schema(ref_template=REF)
        named = {**schema.pop("$defs", {}), model.__name__: schema}
        for name, sub in named.items():
            if found.setdefault(name, sub) != sub:
                raise SchemaConflictError(f"two different schemas are named {name}")
    return found


# The edge's text policy (phoihop_schemas.textpolicy): no C0 control but tab, newline and
# carriage return, no DEL or C1 control, no noncharacter of the basic plane.
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ufdd0-\\ufdef\\ufffe\\uffff]*$"


def text_policy(node: Any) -> None:
    """Every free-text string of the body schemas says which characters it refuses."""
    if isinstance(node, dict):
        plain = node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(
            node
        )
        if plain:
            node["pattern"] = TEXT_PATTERN
        for value in node.values():
            text_policy(value)
    elif isinstance(node, list):
        for value in node:
            text_policy(value)


def deployment_codes(schemas: dict[str, Any], reference: Reference) -> None:
    """The codes this deployment accepts, and the reporter rule, in the body schemas."""
    submission = schemas["Submission"]
    units = sorted(reference.unit_codes)
    submission["properties"]["locality"] |= {
        "enum": units,
        "description": "administrative unit code of this deployment",
    }
    required_for = sorted(kind.value for kind in REPORTER_REQUIRED)
    submission["properties"]["reporter"]["description"] = (
        f"who submitted it; required for {', '.join(required_for)}"
    )
    submission["allOf"] = [
        {
            "if": {"properties": {"kind": {"enum": required_for}}, "required": ["kind"]},
            "then": {
                "required": ["reporter"],
                "properties": {"reporter": {"$ref": REF.format(model="Reporter")}},
            },
        }
    ]
    categories = sorted(c.code for c in reference.categories)
    schemas["ClassifyBody"]["properties"]["category"] |= {"enum": categories}


def examples(reference: Reference) -> dict[str, Any]:
    """A valid body per documented model and bulk format, with this deployment's codes."""
    submission = {
        "kind": "kien_nghi",
        "channel": "tiep_xuc_cu_tri",
        "locality": min(reference.unit_codes),
        "text": EXAMPLE_TEXT,
    }
    return {
        "Submission": submission,
        "AnswerBody": {"text": "Sở đã bố trí kinh phí, tuyến đường được sửa trong quý III."},
        "AcceptBody": {},
        "ReasonBody": {"reason": "Nội dung thuộc thẩm quyền của UBND xã."},
        "ClassifyBody": {"category": reference.categories[0].code, "level": "tinh"},
        "CloseBody": {"reason": "Đã trả lời, cử tri đồng ý."},
        "TargetBody": {
            "target": "0b6f3f5e-8a57-5c0e-9d3e-2f4d6c1a9b11",
            "reason": "Cùng tuyến đường ĐT.753, cùng nội dung.",
        },
        "application/x-ndjson": json.dumps(submission | {"source_ref": "KN-1"}, ensure_ascii=False)
        + "\n",
        "text/csv": "kind,channel,locality,text,submitted_at,source_ref\n"
        f"kien_nghi,tiep_xuc_cu_tri,{submission['locality']},{EXAMPLE_TEXT},"
        "15/03/2025,KN-2\n",
    }


def install(app: FastAPI, *, reference: Reference) -> None:
    """Make `app.openapi()` include the request bodies' schemas and an example of each."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            bodies = component_schemas()
            text_policy(bodies)
            deployment_codes(bodies, reference)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(bodies)
            _add_examples(schema, examples(reference))
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_examples(schema: dict[str, Any], found: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media, body in content.items():
                name = body.get("schema", {}).get("$ref", "").rpartition("/")[2]
                example = found.get(name if media == "application/json" else media)
                if example is not None:
                    body["example"] = example
