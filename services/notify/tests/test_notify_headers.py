"""Security headers on every notify response; `/metrics` behind the token when one is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phoihop_notify.settings import NotifySettings

TOKEN = "metrics-token-for-the-notify-tests"
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


async def test_every_response_carries_the_security_headers(
    settings_for: Callable[..., NotifySettings], run_notify: Callable[..., Any]
) -> None:
    async with run_notify(settings_for(metrics_token=TOKEN)) as notify:
        client, me = notify.client, notify.as_agency("SO_XAY_DUNG")
        responses = {
            "health": await client.get("/healthz"),
            "api": await client.get("/v1/subscriptions", headers=me),
            "no key": await client.get("/v1/subscriptions"),
            "not found": await client.get("/v1/subscriptions/nope", headers=me),
            "invalid": await client.post("/v1/subscriptions", headers=me, json={"url": 1}),
            "metrics without token": await client.get("/metrics"),
            "metrics": await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}),
        }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "health": 200,
        "api": 200,
        "no key": 401,
        "not found": 404,
        "invalid": 422,
        "metrics without token": 401,
        "metrics": 200,
    }
    for name, response in responses.items():
        assert response.headers.items() >= HEADERS.items(), name
        assert response.headers["content-security-policy"].startswith("default-src 'none'"), name
