"""Email to people through a real SMTP client against a local aiosmtpd server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from phoihop_common.net import free_port
from phoihop_notify.store import new_secret
from phoihop_notify.testing import poll, publish
from phoihop_schemas.events import Escalated, Reminded

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


class Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


async def test_escalations_and_reminders_are_emailed(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, smtp
):
    controller, inbox = smtp
    write_subscriptions(
        [],
        contacts={
            "TT_HDND": ["van.phong@hdnd.example.vn", "thu.ky@hdnd.example.vn"],
            "SO_XAY_DUNG": ["mot.cua@soxaydung.example.vn"],
        },
    )
    rec = str(uuid.uuid4())
    settings = settings_for(smtp_host="127.0.0.1", smtp_port=controller.port)
    async with run_notify(settings):
        await publish(
            kafka_bootstrap,
            Reminded(
                recommendation_id=rec,
                sequence=1,
                occurred_at=NOW,
                agency="SO_XAY_DUNG",
                deadline=NOW + timedelta(days=3),
            ),
            Escalated(
                recommendation_id=rec,
                sequence=2,
                occurred_at=NOW,
                agency="SO_XAY_DUNG",
                level=1,
                deadline=NOW,
                recipients=("TT_HDND", "UBMTTQ_TINH"),
            ),
        )
        await poll(lambda: len(inbox.messages) == 2)
    by_rcpt = {tuple(sorted(r)): m for r, m in inbox.messages}
    reminder = by_rcpt[("mot.cua@soxaydung.example.vn",)]
    escalation = by_rcpt[("thu.ky@hdnd.example.vn", "van.phong@hdnd.example.vn")]
    assert "Nhắc hạn" in str(reminder["Subject"])
    assert rec in str(reminder["Subject"])
    assert "Quá hạn" in str(escalation["Subject"])
    assert "SO_XAY_DUNG" in escalation.get_content()


async def test_endpoint_failing_too_long_is_disabled_and_contacts_told(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers, smtp
):
    controller, inbox = smtp
    receiver = await receivers(script=[(500, {})] * 50)
    write_subscriptions(
        [{"agency": "SO_XAY_DUNG", "url": receiver.url, "secret": new_secret(), "id": "so-xd"}],
        contacts={"SO_XAY_DUNG": ["mot.cua@soxaydung.example.vn"]},
    )
    settings = settings_for(
        smtp_port=controller.port,
        retry_schedule=(0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
        disable_after=timedelta(seconds=1),
    )
    rec = str(uuid.uuid4())
    async with run_notify(settings) as notify:
        await publish(
            kafka_bootstrap,
            Reminded(
                recommendation_id=rec,
                sequence=1,
                occurred_at=NOW,
                agency="SO_XAY_DUNG",
                deadline=NOW + timedelta(days=3),
            ),
        )
        headers = notify.as_agency("SO_XAY_DUNG")

        async def disabled() -> dict[str, Any] | None:
            got = (await notify.client.get("/v1/subscriptions/so-xd", headers=headers)).json()
            return got if got["enabled"] is False else None

        sub = await poll(disabled)
        assert str(sub["disabled_reason"]).startswith("failing since")
        await poll(lambda: any("disabled" in str(m["Subject"]) for _, m in inbox.messages))
