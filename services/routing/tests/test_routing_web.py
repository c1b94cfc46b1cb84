"""The worker's pages (faust web): security headers on every response, `/metrics` token."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from phoihop_routing.app import create_app
from phoihop_routing.settings import Settings

TOKEN = "metrics-token-for-the-routing-tests"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def test_pages_carry_the_security_headers_and_metrics_needs_the_token(
    tmp_path: Path,
) -> None:
    routing = create_app(Settings(data_dir=tmp_path / "routing", metrics_token=TOKEN))
    # the worker is not started: the pages are served without a broker
    async with TestClient(TestServer(routing.app.web.web_app)) as client:
        responses = {
            "health": await client.get("/healthz"),
            "ready": await client.get("/readyz"),
            "unknown": await client.get("/nope"),
            "metrics without token": await client.get("/metrics"),
            "wrong token": await client.get("/metrics", headers={"Authorization": "Bearer x"}),
        }
        with_token = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    statuses = {name: r.status for name, r in responses.items()}
    assert statuses == {
        "health": 200,
        "ready": 503,  # not started
        "unknown": 404,
        "metrics without token": 401,
        "wrong token": 401,
    }
    assert responses["metrics without token"].headers["WWW-Authenticate"].startswith("Bearer")
    assert with_token.status != 401  # past the token (the consumer is not running here)
    for name, response in {**responses, "with token": with_token}.items():
        assert {k: response.headers.get(k) for k in HEADERS} == HEADERS, name
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
