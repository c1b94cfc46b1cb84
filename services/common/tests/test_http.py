"""Security headers on every response, even an unhandled error's; the metrics token."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import SecretStr

from phoihop_common.http import API_CSP, DOCS_CSP, SECURITY_HEADERS, install

EXPECTED = {name.lower(): value for name, value in SECURITY_HEADERS.items()}


def _app(*, token: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    @app.get("/own")
    async def own() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b"]), media_type="text/csv")

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>docs</p>")

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse("up 1\n")

    install(app, metrics_token=SecretStr(token) if token else None)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_every_response_carries_the_headers_and_the_csp_fits_the_content() -> None:
    client = _client(_app())
    for path, status in (("/boom", 500), ("/stream", 200), ("/nope", 404), ("/metrics", 200)):
        response = await client.get(path)
        assert response.status_code == status
        assert response.headers.items() >= EXPECTED.items()
        assert response.headers["content-security-policy"] == API_CSP
    assert (await client.get("/stream")).text == "ab"
    assert (await client.get("/page")).headers["content-security-policy"] == DOCS_CSP
    assert (await client.get("/own")).headers["x-frame-options"] == "SAMEORIGIN"  # the route's own


async def test_metrics_token_is_required_only_when_set() -> None:
    guarded = _client(_app(token="s3cret-scrape-token"))
    assert (await guarded.get("/metrics")).status_code == 401
    assert (
        await guarded.get("/metrics", headers={"Authorization": "Basic s3cret"})
    ).status_code == 401
    good = await guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert (good.status_code, good.text) == (200, "up 1\n")
    assert (await guarded.get("/page")).status_code == 200  # only /metrics is guarded
