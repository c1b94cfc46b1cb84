"""Fixtures shared by the cross-service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phoihop_testkit.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port, stopped after the test."""
    r = WebhookReceiver().start()
    yield r
    r.stop()
