"""Nothing lost, nothing duplicated: SIGKILL every service, pause the broker, fail webhooks,
cut audit off its database — all while a stream of recommendations flows."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bench.bus import NOTIFY_ENV, SUPERVISOR, copy_config, new_secret
from phoihop_common.config import load_reference
from phoihop_embedded.stack import Stack
from phoihop_testkit.webhook_receiver import WebhookReceiver
from tests.faults.flow import (
    Flow,
    all_routed,
    audit_problems,
    delivered,
    expected,
    kill_and_restart,
    poll,
    quiet,
    settled_trails,
    webhook_problems,
)
from tests.faults.tcp_proxy import TcpProxy

# The ceilings hold with the other core busy (a second suite, `stress --cpu 1`): every wait
# is a condition polled up to a generous limit; only the faults' own durations are fixed.
pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

ALL_PATH = "/hook/all"
SETTLE_TIMEOUT = 180.0
READY_TIMEOUT = 180.0
FLOWING_TIMEOUT = 60.0
# Agencies with an addressed webhook subscription (a subset keeps delivery volume bounded).
ADDRESSED = ("SO_XAY_DUNG", "SO_NN_MT", "UBND_XA_XA_AN_BINH", "UBND_XA_PHUONG_BAC_SON",
             "DOAN_DBQH", "TT_HDND")  # fmt: skip


@dataclass
class FlakyReceiver:
    """A webhook receiver that answers 503 while `failing` is set."""

    failing: threading.Event = field(default_factory=threading.Event)
    receiver: WebhookReceiver | None = None

    def start(self) -> FlakyReceiver:
        """Listen."""
        self.receiver = WebhookReceiver(
            respond=lambda _p, _b: 503 if self.failing.is_set() else 200, keep_alive=True
        ).start()
        return self


@pytest.fixture
def flaky() -> Iterator[FlakyReceiver]:
    r = FlakyReceiver().start()
    yield r
    assert r.receiver is not None
    r.receiver.stop()


@pytest.fixture
def db_proxy() -> Iterator[TcpProxy | None]:
    """With PostgreSQL: a proxy in front of it that the test can cut (never PG itself)."""
    base = os.environ.get("PHOIHOP_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    url = make_url(base)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    proxy.stop()


def _subscriptions(receiver: WebhookReceiver, config_src: Path) -> list[dict[str, Any]]:
    """Merged events jurisdiction-wide, assigned events addressed to a few agencies."""
    known = {a.code for a in load_reference(config_src).agencies}
    subs: list[dict[str, Any]] = [
        {"agency": SUPERVISOR, "url": receiver.url(ALL_PATH), "secret": new_secret(),
         "event_types": ["merged"], "scope": "jurisdiction"},
    ]  # fmt: skip
    for code in ADDRESSED:
        assert code in known, code
        subs.append(
            {
                "agency": code,
                "url": receiver.url(f"/hook/{code}"),
                "secret": new_secret(),
                "event_types": ["assigned"],
            }
        )
    return subs


def _route(event: dict[str, Any]) -> str | None:
    """Merged events jurisdiction-wide, assigned events to the addressed agencies."""
    if event["type"] == "merged":
        return ALL_PATH
    if event["type"] == "assigned" and event["data"]["agency"] in ADDRESSED:
        return f"/hook/{event['data']['agency']}"
    return None


def test_nothing_lost_or_duplicated_under_crashes_pauses_and_outages(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
    flaky: FlakyReceiver,
    db_proxy: TcpProxy | None,
    request: pytest.FixtureRequest,
) -> None:
    assert flaky.receiver is not None
    receiver = flaky.receiver
    config = copy_config(tmp_path / "config", [])
    copy_config(config, _subscriptions(receiver, config))
    env = {
        **NOTIFY_ENV,
        "PHOIHOP_NOTIFY_RETRY_SCHEDULE": "0,1,1,2,3,5,8,13",
        "PHOIHOP_ROUTING_TIMER_INTERVAL": "1.0",
    }
    kwargs: dict[str, Any] = {}
    if db_proxy is not None:
        db = request.getfixturevalue("database_url")
        kwargs["database_url"] = db
        env["PHOIHOP_AUDIT_DATABASE_URL"] = (
            make_url(db)
            .set(host="127.0.0.1", port=db_proxy.port)
            .render_as_string(hide_password=False)
        )
    stack = stack_factory(config_dir=config, extra_env=env, **kwargs)
    flow = Flow(stack.url("ingest")).start()
    faults: list[str] = []
    try:
        assert poll(lambda: len(flow.accepted) >= 100, timeout=120), flow.attempts
        for name in ("ingest", "routing", "notify", "audit"):
            poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.2)
            kill_and_restart(stack, name, timeout=READY_TIMEOUT)
            faults.append(f"SIGKILL {name} at {len(flow.accepted)} accepted")
        assert stack.broker is not None, "the broker pause needs the embedded broker"
        # the faults' durations below are the faults themselves, not waits for something
        stack.broker.pause()
        time.sleep(10.0)
        stack.broker.resume()
        faults.append(f"broker paused 10 s at {len(flow.accepted)} accepted")
        flaky.failing.set()
        time.sleep(8.0)
        flaky.failing.clear()
        faults.append("webhook receiver answered 503 for 8 s")
        if db_proxy is not None:
            db_proxy.cut()
            time.sleep(8.0)
            db_proxy.restore()
            faults.append("audit cut off PostgreSQL for 8 s")
        poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.2)
    finally:
        flow.finish()
    accepted = dict(flow.accepted)
    ids = sorted(accepted)
    assert len(ids) >= 500, f"too little flowed: {len(ids)}; attempts {dict(flow.attempts)}"

    # Settle: audit has stored a routing outcome for each, then the webhooks catch up.
    audit = stack.url("audit")
    poll(partial(all_routed, audit, len(ids)), timeout=SETTLE_TIMEOUT, every=2.0)
    trails, _ = settled_trails(audit, ids, timeout=SETTLE_TIMEOUT)
    want = expected(trails, _route)
    poll(lambda: not want - delivered(receiver.snapshot()), timeout=SETTLE_TIMEOUT, every=2.0)
    # stragglers (duplicates, if any) arrive so they are checked too
    quiet(lambda: len(receiver.snapshot()), quiet=3.0, timeout=30.0)
    deliveries = receiver.snapshot()
    trails, problems = settled_trails(audit, ids, timeout=30.0)  # after the stragglers
    context = f"faults: {faults}; {len(ids)} accepted; attempts {dict(flow.attempts)}"

    # 1. Every accepted submission is in the audit trail, each event once, no sequence gap.
    assert not problems, f"{len(problems)} bad trails: {problems[:10]}; {context}"
    # 2. Audit's own reconciliation and chain agree.
    problems = audit_problems(audit, trails)
    assert not problems, f"audit: {problems[:10]}; {context}"
    # 3. Every subscribed webhook was delivered, with one webhook-id per (event, endpoint).
    problems = webhook_problems(deliveries, want)
    assert not problems, f"webhooks: {problems[:10]}; {context}"
