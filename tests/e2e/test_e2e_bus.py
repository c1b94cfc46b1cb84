"""The whole bus end to end: broker + four services as real processes, real HTTP, real webhooks."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from standardwebhooks import Webhook

from bench.bus import key
from phoihop_embedded.stack import Stack
from phoihop_testkit.polling import poll
from phoihop_testkit.webhook_receiver import Delivery, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

SUBMITTER = "UBMTTQ_TINH"

COMMUNE = "UBND_XA_XA_AN_BINH"
ROAD_TEXT = (
    "Cử tri thôn 3, xã An Bình kiến nghị sửa chữa tuyến đường liên thôn 3 – thôn 4; "
    "mặt đường bê tông đã vỡ nát, xe chở lúa đi lại khó khăn."
)


def _poll(fn: Callable[[], Any], *, what: str = "condition", timeout: float = 60.0) -> Any:
    return poll(fn, timeout=timeout, what=what, every=0.2)


def _secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def _subscribe(config_dir: Path, subs: list[dict[str, Any]]) -> None:
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump({"subscriptions": subs}, allow_unicode=True), encoding="utf-8"
    )


def _start(stack_factory: Callable[..., Stack], config_dir: Path) -> Stack:
    return stack_factory(
        config_dir=config_dir,
        extra_env={
            "PHOIHOP_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
            "PHOIHOP_NOTIFY_RETRY_SCHEDULE": "0,1,2,4",
            "PHOIHOP_ROUTING_TIMER_INTERVAL": "0.5",
        },
    )


def _submit(stack: Stack, text: str, *, kind: str = "kien_nghi") -> str:
    body = {"kind": kind, "channel": "tiep_xuc_cu_tri", "locality": "xa-an-binh", "text": text}
    resp = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations", json=body, headers=key(SUBMITTER), timeout=30
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _status(stack: Stack, rec_id: str, agency: str = "TT_HDND") -> dict[str, Any] | None:
    resp = httpx.get(
        f"{stack.url('audit')}/v1/recommendations/{rec_id}", headers=key(agency), timeout=10
    )
    return resp.json() if resp.status_code == 200 else None


def _trail(stack: Stack, rec_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        f"{stack.url('audit')}/v1/recommendations/{rec_id}/trail",
        headers=key("TT_HDND"),
        timeout=10,
    )
    return list(resp.json()["events"]) if resp.status_code == 200 else []


def _verified(delivery: Delivery, secret: str) -> Any:
    """Verify the Standard Webhooks signature with the reference library; return the payload."""
    return Webhook(secret).verify(delivery.body, delivery.headers)


def _is(event_type: str, rec_id: str) -> Callable[[Delivery], bool]:
    def match(d: Delivery) -> bool:
        try:
            payload = d.json()
        except ValueError:
            return False
        return bool(payload.get("type", "").endswith(f".{event_type}.v1")) and (
            payload.get("subject") == rec_id
        )

    return match


def test_submission_is_assigned_signed_webhook_answered_and_trail_verifies(
    stack_factory: Callable[..., Stack], config_dir: Path, receiver: WebhookReceiver
) -> None:
    secret = _secret()
    _subscribe(
        config_dir,
        [
            {
                "agency": COMMUNE,
                "url": receiver.url("/commune"),
                "secret": secret,
                "event_types": ["assigned", "answered"],
            }
        ],
    )
    stack = _start(stack_factory, config_dir)
    rec_id = _submit(stack, ROAD_TEXT)

    hook = receiver.wait_for(_is("assigned", rec_id))
    payload = _verified(hook, secret)
    assert payload["data"]["agency"] == COMMUNE
    assert payload["data"]["sequence"] == 2
    assert hook.headers["webhook-id"]

    status = _poll(lambda: (s := _status(stack, rec_id)) and s.get("agency") and s, what="status")
    assert status["agency"] == COMMUNE
    assert status["status"] == "assigned"
    assert status["deadline"]

    # Another agency may not answer it.
    other = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations/{rec_id}/answer",
        json={"text": "Không phải của chúng tôi"},
        headers=key("SO_Y_TE"),
        timeout=30,
    )
    assert other.status_code in (403, 404), other.text

    answer = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations/{rec_id}/answer",
        json={"text": "UBND xã đã đưa tuyến đường vào kế hoạch sửa chữa quý III."},
        headers=key(COMMUNE),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text

    events = _poll(lambda: (t := _trail(stack, rec_id)) and len(t) >= 3 and t, what="trail")
    assert [e["type"] for e in events] == ["received", "assigned", "answered"]
    assert [e["sequence"] for e in events] == [1, 2, 3]
    assert events[0]["data"]["text"] == ROAD_TEXT

    verify = httpx.get(f"{stack.url('audit')}/v1/audit/verify", headers=key("TT_HDND"), timeout=30)
    assert verify.status_code == 200
    assert verify.json()["ok"] is True

    done = _poll(
        lambda: (s := _status(stack, rec_id)) and s["status"] == "answered" and s,
        what="answered status",
    )
    assert done["sequence"] == 3


def test_missed_deadline_escalates_to_the_supervisors_webhook(
    stack_factory: Callable[..., Stack], config_dir: Path, receiver: WebhookReceiver
) -> None:
    sla_path = config_dir / "sla_policies.yaml"
    sla = yaml.safe_load(sla_path.read_text("utf-8"))
    sla["kinds"]["kien_nghi"] = {"accept": {"seconds": 1}, "answer": {"seconds": 2}}
    sla["escalation"]["remind_before"] = {"seconds": 1}
    sla["escalation"]["levels"][0]["after"] = {"seconds": 0}
    sla["escalation"]["levels"][1]["after"] = {"seconds": 2}
    sla_path.write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")
    secret = _secret()
    _subscribe(
        config_dir,
        [
            {
                "agency": "TT_HDND",
                "url": receiver.url("/hdnd"),
                "secret": secret,
                "event_types": ["escalated"],
            }
        ],
    )
    stack = _start(stack_factory, config_dir)
    rec_id = _submit(stack, ROAD_TEXT)

    hook = receiver.wait_for(_is("escalated", rec_id), timeout=90)
    payload = _verified(hook, secret)
    assert payload["data"]["level"] == 1
    assert "TT_HDND" in payload["data"]["recipients"]
    assert payload["data"]["agency"] == COMMUNE

    events = _poll(
        lambda: (t := _trail(stack, rec_id)) and any(e["type"] == "escalated" for e in t) and t,
        what="escalated in trail",
    )
    sequences = [e["sequence"] for e in events]
    assert sequences == list(range(1, len(sequences) + 1))
