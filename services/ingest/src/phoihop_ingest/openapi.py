"""Ingest's OpenAPI document: the request bodies its routes read by hand, from the models.

The routes take the raw `Request` (to bound a body's size and depth before parsing it), so
FastAPI cannot see their bodies; `openapi_extra` on each route names the body and
`install` adds the models' JSON Schemas under `components/schemas`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from phoihop_common.config import Reference
from phoihop_ingest import responses
from phoihop_ingest.bulk import XLSX_TYPE
from phoihop_schemas.events import Submission

REF = "#/components/schemas/{model}"
EXAMPLE_TEXT = "Cử tri đề nghị sửa chữa tuyến đường liên thôn đã xuống cấp."
BODY_MODELS: tuple[type[BaseModel], ...] = (
    Submission,
    *dict.fromkeys(model for _action, model, _who in responses.ACTIONS.values()),
)


class SchemaConflictError(Exception):
    """Two models define different schemas under the same component name."""


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
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                component_schemas()
            )
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
