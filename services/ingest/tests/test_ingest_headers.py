"""Security headers on every ingest response; `/metrics` behind the token when one is set."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from phoihop_ingest.app import create_app
from phoihop_ingest.settings import IngestSettings

TOKEN = "metrics-token-for-the-ingest-tests"
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


async def test_every_response_carries_the_security_headers(
    make_settings: Callable[..., IngestSettings],
) -> None:
    app = create_app(make_settings(metrics_token=TOKEN))  # no lifespan: no broker needed
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        key = {"X-API-Key": "dev-SO_XAY_DUNG", "Content-Type": "application/json"}
        responses = {
            "health": await client.get("/healthz"),
            "openapi": await client.get("/openapi.json"),
            "no key": await client.post("/v1/recommendations", json={}),
            "invalid": await client.post("/v1/recommendations", headers=key, content=b"{}"),
            "unknown route": await client.get("/v1/nope"),
            "metrics without token": await client.get("/metrics"),
            "metrics": await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}),
        }
        docs = await client.get("/docs")
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "health": 200,
        "openapi": 200,
        "no key": 401,
        "invalid": 422,
        "unknown route": 404,
        "metrics without token": 401,
        "metrics": 200,
    }
    for name, response in responses.items():
        assert response.headers.items() >= HEADERS.items(), name
        assert response.headers["content-security-policy"].startswith("default-src 'none'"), name
    assert docs.status_code == 200
    # Swagger UI's assets are the service's own: the page's policy names no other host
    assert "https://" not in docs.headers["content-security-policy"]
    assert "script-src 'self'" in docs.headers["content-security-policy"]
