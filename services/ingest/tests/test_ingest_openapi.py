"""Ingest's OpenAPI documents the bodies its routes read by hand, with valid examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phoihop_ingest import bulk, openapi, responses
from phoihop_ingest.app import create_app
from phoihop_ingest.settings import IngestSettings
from phoihop_schemas.events import Submission


def _document(tmp_path: Path) -> dict[str, Any]:
    app = create_app(IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"))
    return app.openapi()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_post_route_documents_its_body_and_every_ref_resolves(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    posts = {path: ops["post"] for path, ops in doc["paths"].items() if "post" in ops}
    assert len(posts) == 2 + len(responses.ACTIONS)
    for path, operation in posts.items():
        assert operation["requestBody"]["content"], path
    submit = posts["/v1/recommendations"]["requestBody"]
    assert submit["required"] is True
    assert submit["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submission"
    }
    bulk_media = set(posts["/v1/recommendations/bulk"]["requestBody"]["content"])
    assert bulk_media == {
        "application/x-ndjson",
        "text/csv",
        bulk.XLSX_TYPE,
        "multipart/form-data",
    }
    names = set(doc["components"]["schemas"])
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in names, ref


def test_examples_are_valid_bodies(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    for segment, (_action, model, _who) in responses.ACTIONS.items():
        body = doc["paths"][f"/v1/recommendations/{{recommendation_id}}/{segment}"]["post"]
        example = body["requestBody"]["content"]["application/json"]["example"]
        model.model_validate(example)
    content = doc["paths"]["/v1/recommendations/bulk"]["post"]["requestBody"]["content"]
    submission = doc["paths"]["/v1/recommendations"]["post"]["requestBody"]["content"]
    Submission.model_validate(submission["application/json"]["example"])
    Submission.model_validate(json.loads(content["application/x-ndjson"]["example"]))
    csv_file = tmp_path / "example.csv"
    csv_file.write_text(content["text/csv"]["example"], encoding="utf-8")
    [row] = list(bulk.csv_rows(csv_file))
    assert row.fields is not None
    Submission.model_validate(row.fields)


def test_component_names_do_not_clash() -> None:
    schemas = openapi.component_schemas()
    assert {m.__name__ for m in openapi.BODY_MODELS} <= set(schemas)
