"""Public endpoints: verify from the last checkpoint, a guarded full re-hash, cached proofs,
`/metrics` behind a token, security headers on every response."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import update

from phoihop_audit import log
from phoihop_audit.app import Runtime, create_app
from phoihop_audit.db import checkpoints
from phoihop_audit.exceptions import TooManyRequestsError
from phoihop_audit.settings import AuditSettings

SUPERVISOR = {"X-API-Key": "dev-TT_HDND"}
RESOLVER = {"X-API-Key": "dev-SO_XAY_DUNG"}
TOKEN = "metrics-token-for-the-audit-tests"
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture
async def open_client(settings: AuditSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit API with two full verifications a minute and a metrics token."""
    tuned = settings.model_copy(update={"full_verify_per_minute": 2, "metrics_token": TOKEN})
    app = create_app(AuditSettings.model_validate(tuned.model_dump()), consume=False)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://audit"
        ) as http,
    ):
        yield http


def _fill(rt: Runtime, store: Callable[..., Any], ev: Any, new_id: Callable[[], str]) -> str:
    rec = new_id()
    store([ev.received(rec), ev.assigned(rec), ev.answered(rec)])
    assert log.make_checkpoint(rt.engine, signer=rt.signer) is not None
    return rec


async def test_verify_answers_from_the_last_checkpoint_without_a_key(
    rt: Runtime, store, ev, new_id, open_client: httpx.AsyncClient
) -> None:
    empty = (await open_client.get("/v1/audit/verify")).json()
    assert (empty["ok"], empty["checkpoint"]) == (True, None)
    _fill(rt, store, ev, new_id)
    body = (await open_client.get("/v1/audit/verify")).json()
    latest = log.list_checkpoints(rt.engine, limit=1)[0]
    assert body == body | {
        "ok": True,
        "mode": "checkpoint",
        "signature_valid": True,
        "tree_size": 3,
        "root_hash": latest.root_hash,
        "created_at": latest.created_at,
        "log_size": 3,
    }
    assert "checked" not in body  # nothing was re-hashed
    with rt.engine.begin() as conn:  # a forged signature is seen without a re-hash
        conn.execute(update(checkpoints).values(signature="AAAA"))
    forged = (await open_client.get("/v1/audit/verify")).json()
    assert (forged["ok"], forged["first_bad"]["reason"]) == (False, "bad_checkpoint_signature")


async def test_full_verify_needs_a_supervisor_and_is_rate_limited(
    rt: Runtime, store, ev, new_id, open_client: httpx.AsyncClient
) -> None:
    _fill(rt, store, ev, new_id)
    full = {"full": "true"}
    assert (await open_client.get("/v1/audit/verify", params=full)).status_code == 401
    refused = await open_client.get("/v1/audit/verify", params=full, headers=RESOLVER)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    for _ in range(2):
        ok = await open_client.get("/v1/audit/verify", params=full, headers=SUPERVISOR)
        assert ok.json() == ok.json() | {"ok": True, "mode": "full", "checked": 3}
    limited = await open_client.get("/v1/audit/verify", params=full, headers=SUPERVISOR)
    assert limited.status_code == 429
    assert limited.json()["error"] == "too_many_requests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-content-type-options"] == "nosniff"
    # the checkpoint answer stays available meanwhile
    assert (await open_client.get("/v1/audit/verify")).json()["ok"] is True


def test_full_verify_gate_admits_one_at_a_time_and_a_few_a_minute() -> None:
    now = [1000.0]
    gate = log.FullVerifyGate(per_minute=2, clock=lambda: now[0])
    inside, release = threading.Event(), threading.Event()

    def slow() -> dict[str, Any]:
        inside.set()
        release.wait(5)
        return {"ok": True}

    worker = threading.Thread(target=gate.run, args=(slow,))
    worker.start()
    assert inside.wait(5)
    with pytest.raises(TooManyRequestsError, match="running"):
        gate.run(lambda: {"ok": True})
    release.set()
    worker.join(5)
    assert gate.run(lambda: {"ok": True}) == {"ok": True}
    with pytest.raises(TooManyRequestsError) as err:
        gate.run(lambda: {"ok": True})
    assert err.value.retry_after == 60
    now[0] += 60.0
    assert gate.run(lambda: {"ok": True}) == {"ok": True}


async def test_proofs_stay_public_and_are_cached(
    rt: Runtime, store, ev, new_id, open_client: httpx.AsyncClient, monkeypatch
) -> None:
    rec = _fill(rt, store, ev, new_id)
    _fill(rt, store, ev, new_id)  # second checkpoint: 6
    reads: list[int | None] = []
    original = log.leaf_hashes

    def counted(engine: Any, *, upto: int | None = None) -> list[bytes]:
        reads.append(upto)
        return original(engine, upto=upto)

    monkeypatch.setattr(log, "leaf_hashes", counted)
    event_id = ev.envelope(ev.answered(rec)).id
    params = {"event_id": event_id, "tree_size": 3}
    first = await open_client.get("/v1/audit/proof/inclusion", params=params)
    again = await open_client.get("/v1/audit/proof/inclusion", params=params)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["leaf_index"] == 2
    cons = {"first": 3, "second": 6}
    one = await open_client.get("/v1/audit/proof/consistency", params=cons)
    two = await open_client.get("/v1/audit/proof/consistency", params=cons)
    assert one.json() == two.json()
    assert reads == [3, 6]  # each proof computed once
    assert one.headers["x-frame-options"] == "DENY"


def test_proof_cache_is_bounded_and_refuses_when_busy() -> None:
    cache = log.ProofCache(size=2, concurrent=1, wait=0.01)
    calls: list[str] = []

    def compute(name: str) -> Callable[[], str]:
        return lambda: calls.append(name) or name

    for name in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(name, compute(name)) == name
    assert calls == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    cache._computing.acquire()  # another proof being computed
    with pytest.raises(TooManyRequestsError):
        cache.get("d", compute("d"))
    assert cache.get("a", compute("a")) == "a"  # cached answers still served


async def test_metrics_needs_the_token_and_every_response_has_security_headers(
    open_client: httpx.AsyncClient,
) -> None:
    no_token = await open_client.get("/metrics")
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    wrong = await open_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    scraped = await open_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert "phoihop_audit_" in scraped.text
    responses = [
        no_token,
        scraped,
        await open_client.get("/healthz"),
        await open_client.get("/v1/audit/checkpoints"),
        await open_client.get("/v1/recommendations/nope", headers=SUPERVISOR),  # 404
        await open_client.get("/v1/recommendations"),  # 401
        await open_client.get("/v1/audit/checkpoints", params={"limit": 0}),  # 422
        await open_client.get("/no/such/route"),
    ]
    assert [r.status_code for r in responses] == [401, 200, 200, 200, 404, 401, 422, 404]
    for response in responses:
        assert response.headers.items() >= HEADERS.items(), response.request.url
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    docs = await open_client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI's assets are the service's own: the page's policy names no other host
    assert "https://" not in docs.headers["content-security-policy"]
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"
