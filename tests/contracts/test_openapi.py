"""The OpenAPI documents of ingest, audit and notify say what the services really do.

Each app is built as the services build it (no broker, no lifespan: `app.openapi()` and the
docs pages need neither) and its document is checked: request bodies, the `apiKey` security
scheme on every protected operation, every error status with the one error model, a 2xx
schema on every route, `/metrics` as text, notify's webhooks, and Swagger UI / ReDoc served
from the service itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from phoihop_audit.app import create_app as create_audit
from phoihop_audit.settings import AuditSettings
from phoihop_ingest import responses as ingest_responses
from phoihop_ingest.app import create_app as create_ingest
from phoihop_ingest.settings import IngestSettings
from phoihop_notify.app import create_app as create_notify
from phoihop_notify.settings import NotifySettings
from phoihop_schemas.events import LIFECYCLE_EVENTS
from phoihop_testkit.plugin import TEST_PII_KEY

SERVICES = ("ingest", "audit", "notify")
ERROR_REF = "#/components/schemas/ErrorBody"
METHODS = {"get", "post", "put", "patch", "delete"}
# Operations anyone may call (no key): operations and the public proofs of the trail.
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/audit/checkpoints"),
    ("get", "/v1/audit/proof/inclusion"),
    ("get", "/v1/audit/proof/consistency"),
}
# Public, but `full=true` needs a supervisor's key: the key is optional.
OPTIONAL_KEY = {("get", "/v1/audit/verify")}
# POSTs that take no body.
BODYLESS = {
    ("post", "/v1/subscriptions/{subscription_id}/rotate-secret"),
    ("post", "/v1/deliveries/replay"),
    ("post", "/v1/deliveries/{delivery_id}/replay"),
}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    """The three apps, each on its own throw-away SQLite file."""
    tmp = tmp_path_factory.mktemp("openapi")
    return {
        "ingest": create_ingest(
            IngestSettings(database_url=f"sqlite:///{tmp / 'ingest.db'}", pii_key=TEST_PII_KEY)
        ),
        "audit": create_audit(
            AuditSettings(
                database_url=f"sqlite:///{tmp / 'audit.db'}",
                data_dir=tmp / "audit",
                pii_key=TEST_PII_KEY,
            ),
            consume=False,
        ),
        "notify": create_notify(
            NotifySettings(database_url=f"sqlite:///{tmp / 'notify.db'}", pii_key=TEST_PII_KEY)
        ),
    }


@pytest.fixture(scope="module")
def docs(apps: dict[str, FastAPI]) -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document."""
    return {name: app.openapi() for name, app in apps.items()}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every documented operation."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    return response.get("content", {}).get("application/json", {}).get("schema")


def _is_error_body(schema: dict[str, Any] | None) -> bool:
    if schema is None:
        return False
    if schema.get("$ref") == ERROR_REF:
        return True
    return any(s.get("$ref") == ERROR_REF for s in schema.get("anyOf", ()))


@pytest.mark.parametrize("service", SERVICES)
def test_every_ref_resolves_and_no_fastapi_default_error_model(
    docs: dict[str, dict[str, Any]], service: str
) -> None:
    doc = docs[service]
    names = set(doc["components"]["schemas"])
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in names, ref
    assert "HTTPValidationError" not in names, "a route still documents FastAPI's 422 model"
    assert doc["components"]["schemas"]["ErrorItem"]["required"] == ["field", "message"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_with_a_body_documents_it(
    docs: dict[str, dict[str, Any]], service: str
) -> None:
    for method, path, operation in operations(docs[service]):
        if method not in ("post", "put", "patch") or (method, path) in BODYLESS:
            assert "requestBody" not in operation, (method, path)
            continue
        body = operation.get("requestBody")
        assert body, (method, path)
        assert body["content"], (method, path)
        for media, content in body["content"].items():
            assert content.get("schema"), (method, path, media)
            if media == "application/json" and service == "ingest":
                assert "example" in content, (method, path)


def test_ingest_bodies_come_from_the_models(docs: dict[str, dict[str, Any]]) -> None:
    paths = docs["ingest"]["paths"]
    submit = paths["/v1/recommendations"]["post"]["requestBody"]["content"]["application/json"]
    assert submit["schema"] == {"$ref": "#/components/schemas/Submission"}
    for segment, (_action, model, _who) in ingest_responses.ACTIONS.items():
        path = f"/v1/recommendations/{{recommendation_id}}/{segment}"
        content = paths[path]["post"]["requestBody"]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    bulk = paths["/v1/recommendations/bulk"]["post"]["requestBody"]["content"]
    assert {"text/csv", "application/x-ndjson", "multipart/form-data"} <= set(bulk)
    assert any("spreadsheetml" in media for media in bulk)
    submission = docs["ingest"]["components"]["schemas"]["Submission"]
    assert submission["properties"]["locality"]["enum"], "this deployment's unit codes"


@pytest.mark.parametrize("service", SERVICES)
def test_every_protected_operation_needs_the_api_key(
    docs: dict[str, dict[str, Any]], service: str
) -> None:
    doc = docs[service]
    assert doc["components"]["securitySchemes"]["apiKey"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    for method, path, operation in operations(doc):
        security = operation.get("security", [])
        if (method, path) in PUBLIC:
            assert {"apiKey": []} not in security, (method, path)
        elif (method, path) in OPTIONAL_KEY:
            assert {"apiKey": []} in security, (method, path)
            assert {} in security, (method, path)
        else:
            assert security == [{"apiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        # the key is never a plain header parameter next to the scheme
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "x-api-key" not in names, (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_status_is_documented_with_the_error_model(
    docs: dict[str, dict[str, Any]], service: str
) -> None:
    for method, path, operation in operations(docs[service]):
        answers = operation["responses"]
        for status, response in answers.items():
            if status[0] not in "45":
                continue
            if path == "/readyz" and status == "503":
                schema = _json_schema(response)
                assert schema == {"$ref": "#/components/schemas/Readiness"}
                continue
            assert _is_error_body(_json_schema(response)), (method, path, status)
            if status in ("429", "503"):
                assert "Retry-After" in response.get("headers", {}), (method, path, status)
        has_params = bool(operation.get("parameters")) or "requestBody" in operation
        if has_params and path != "/metrics":
            assert "422" in answers, (method, path)
        if "{" in path:
            assert "404" in answers, (method, path)
        json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
        if json_body:
            assert "400" in answers, (method, path)  # malformed JSON


def test_ingest_documents_limits_media_types_and_unavailability(
    docs: dict[str, dict[str, Any]],
) -> None:
    for method, path, operation in operations(docs["ingest"]):
        if method == "post":
            assert {"401", "413", "415", "422", "503"} <= set(operation["responses"]), path


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_has_a_2xx_schema(docs: dict[str, dict[str, Any]], service: str) -> None:
    for method, path, operation in operations(docs[service]):
        ok = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert ok, (method, path)
        for status, response in ok.items():
            if status == "204":
                assert "content" not in response, (method, path)
                continue
            content = response.get("content", {})
            assert content, (method, path, status)
            for media, entry in content.items():
                schema = entry.get("schema")
                assert schema, (method, path, media)
                if media == "application/json":
                    assert "$ref" in schema, (method, path, "a named response model")


@pytest.mark.parametrize("service", SERVICES)
def test_operations_share_one_shape(docs: dict[str, dict[str, Any]], service: str) -> None:
    doc = docs[service]
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}
    assert metrics["text/plain"]["schema"] == {"type": "string"}
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert ready["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"
    }
    assert (
        doc["components"]["schemas"]["Readiness"]
        == docs["ingest"]["components"]["schemas"]["Readiness"]
    )
    assert (
        doc["components"]["schemas"]["ErrorBody"]
        == docs["ingest"]["components"]["schemas"]["ErrorBody"]
    )


def test_notify_documents_every_webhook(docs: dict[str, dict[str, Any]]) -> None:
    doc = docs["notify"]
    hooks = doc["webhooks"]
    assert set(hooks) == {m.event_name for m in LIFECYCLE_EVENTS}
    schemas = doc["components"]["schemas"]
    for name, item in hooks.items():
        post = item["post"]
        content = post["requestBody"]["content"]
        assert set(content) == {"application/cloudevents+json"}, name
        ref = content["application/cloudevents+json"]["schema"]["$ref"]
        event = schemas[ref.rpartition("/")[2]]
        assert event["properties"]["type"]["const"] == f"vn.phoihop.recommendation.{name}.v1"
        assert {"specversion", "id", "source", "subject", "time", "data"} <= set(event["required"])
        headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert all(h["required"] for h in headers.values())
        assert {"200", "410", "429", "default"} <= set(post["responses"]), name
        assert "dead-letter" in post["description"], name
        assert "5 min" in post["description"], name
    received = schemas[schemas["ReceivedCloudEvent"]["properties"]["data"]["$ref"].split("/")[-1]]
    reporter = received["properties"]["reporter"]["anyOf"][0]["$ref"]
    assert reporter.endswith("/Reporter"), "delivered in clear, not sealed"


@pytest.mark.parametrize("service", SERVICES)
async def test_docs_pages_load_only_the_services_own_assets(
    apps: dict[str, FastAPI], service: str
) -> None:
    url = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""")
    transport = httpx.ASGITransport(app=apps[service])
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        for page in ("/docs", "/redoc"):
            html = await client.get(page)
            assert html.status_code == 200, page
            assert not re.search(r"https?://", html.text), (page, html.text)
            found = url.findall(html.text)
            assert len(found) >= 2, html.text
            for link in found:
                assert link.startswith("/"), link
                asset = await client.get(link)
                assert asset.status_code == 200, link
                assert asset.content, link


def test_the_contract_documents_are_not_stale(tmp_path: Path) -> None:
    # building twice gives the same document (no state leaks between apps)
    first = create_notify(NotifySettings(database_url=f"sqlite:///{tmp_path / 'a.db'}")).openapi()
    second = create_notify(NotifySettings(database_url=f"sqlite:///{tmp_path / 'b.db'}")).openapi()
    assert first == second
