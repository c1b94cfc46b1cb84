"""One error model: every refusal is `{"error", "detail"}`; readiness; local API docs."""

from __future__ import annotations

import re
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query, Security
from pydantic import BaseModel, SecretStr

from phoihop_common.errors import (
    ApiError,
    ErrorBody,
    api_key_header,
    error_responses,
    install_error_handlers,
    normalize_detail,
    unauthorized,
)
from phoihop_common.http import install, install_docs, readiness

KEY = "s3cret-key"


class DomainError(Exception):
    """A service's own exception, mapped onto the error model."""


class Item(BaseModel):
    name: str
    count: int


def agency(key: Annotated[str | None, Security(api_key_header)]) -> str:
    """The caller, by its key."""
    if key != KEY:
        raise unauthorized(key)
    return "SO_XAY_DUNG"


def _app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    install(app, metrics_token=SecretStr("scrape"))
    install_error_handlers(
        app, {DomainError: lambda exc: ApiError(409, "domain_conflict", str(exc))}
    )
    install_docs(app)

    @app.post("/items", responses=error_responses(400, 401, 422))
    async def create(item: Item, who: Annotated[str, Security(agency)]) -> dict[str, str]:
        return {"by": who, "name": item.name}

    @app.get("/limited", responses=error_responses(422))
    async def limited(limit: Annotated[int, Query(ge=1, le=10)] = 1) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/busy")
    async def busy() -> None:
        raise ApiError(503, "broker_unavailable", "try later", headers={"Retry-After": "5"})

    @app.get("/conflict")
    async def conflict() -> None:
        raise DomainError("already there")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    @app.get("/metrics")
    async def metrics() -> str:
        return "up 1"

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://svc")


def _error(response: httpx.Response) -> ErrorBody:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    return ErrorBody.model_validate(body)


async def test_every_refusal_has_the_error_model() -> None:
    good = {"X-API-Key": KEY}
    async with _client(_app()) as client:
        cases = {
            "missing key": (await client.post("/items", json={}), 401, "missing_api_key"),
            "unknown key": (
                await client.post("/items", json={}, headers={"X-API-Key": "x"}),
                401,
                "invalid_api_key",
            ),
            "malformed json": (
                await client.post(
                    "/items",
                    content=b'{"name": ',
                    headers=good | {"Content-Type": "application/json"},
                ),
                400,
                "invalid_json",
            ),
            "invalid body": (
                await client.post("/items", json={"name": 1}, headers=good),
                422,
                "invalid_request",
            ),
            "out of bounds": (await client.get("/limited?limit=99"), 422, "invalid_request"),
            "unknown route": (await client.get("/nope"), 404, "not_found"),
            "wrong method": (await client.delete("/items"), 405, "method_not_allowed"),
            "api error": (await client.get("/busy"), 503, "broker_unavailable"),
            "mapped": (await client.get("/conflict"), 409, "domain_conflict"),
            "unhandled": (await client.get("/boom"), 500, "internal_error"),
            "metrics token": (await client.get("/metrics"), 401, "metrics_token_required"),
        }
        ok = await client.post("/items", json={"name": "a", "count": 1}, headers=good)
    assert ok.json() == {"by": "SO_XAY_DUNG", "name": "a"}
    for name, (response, status, reason) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert _error(response).error == reason, name
    invalid = _error(cases["invalid body"][0])
    assert isinstance(invalid.detail, list)
    assert {i.field for i in invalid.detail} == {"body.name", "body.count"}
    bounds = _error(cases["out of bounds"][0])
    assert isinstance(bounds.detail, list)
    assert bounds.detail[0].field == "query.limit"
    assert cases["api error"][0].headers["Retry-After"] == "5"
    assert cases["wrong method"][0].headers["Allow"] == "POST"


def test_detail_is_text_items_or_null() -> None:
    assert normalize_detail(None) is None
    assert normalize_detail("plain") == "plain"
    assert normalize_detail([{"field": "text", "message": "too long"}]) == [
        {"field": "text", "message": "too long"}
    ]
    assert normalize_detail([{"loc": ("body", "url"), "msg": "bad"}]) == [
        {"field": "body.url", "message": "bad"}
    ]
    assert normalize_detail({"loc": ["query"], "msg": "x"}) == [{"field": "query", "message": "x"}]
    assert normalize_detail(42) == "42"
    assert normalize_detail(["just text"]) == [{"field": "", "message": "just text"}]
    assert len(normalize_detail([{"field": "f", "message": "m"}] * 100) or []) == 20
    # a lone surrogate quoted from the input cannot break the JSON encoder
    assert normalize_detail("bad \ud800") == "bad \\ud800"


def test_documented_statuses_use_the_error_model() -> None:
    doc = _app().openapi()
    responses = doc["paths"]["/items"]["post"]["responses"]
    for status in ("400", "401", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": api_key_header.model.description,
    }
    assert doc["paths"]["/items"]["post"]["security"] == [{"apiKey": []}]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"checks": {"database": True, "consumer": True}}, ("ready", None, 200)),
        (
            {"checks": {"database": False, "consumer": True}},
            ("not_ready", "database_not_ready", 503),
        ),
        (
            {"checks": {"database": True}, "problem": ("consumer_stuck", "retrying offset 7")},
            ("not_ready", "consumer_stuck", 503),
        ),
        ({"starting": True}, ("starting", "starting", 503)),
    ],
)
def test_readiness_has_one_shape(kwargs: dict[str, object], expected: tuple[object, ...]) -> None:
    ready = readiness(**kwargs)  # type: ignore[arg-type]
    assert (ready.status, ready.reason, ready.http_status) == expected
    assert set(ready.model_dump()) == {"status", "reason", "detail", "checks"}


URL = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_nothing_from_outside(page: str) -> None:
    async with _client(_app()) as client:
        html = await client.get(page)
        assert html.status_code == 200
        assert not re.search(r"https?://", html.text), html.text
        urls = URL.findall(html.text)
        assert urls, html.text
        for url in urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
    assert "https:" not in html.headers["content-security-policy"]
