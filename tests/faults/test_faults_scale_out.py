"""Scale-out on one machine: two routing workers, two notify and two audit replicas under a
steady flow; SIGKILL one of each in turn (not restarted). The survivors take the partitions
over: every case is delivered once per subscription, every trail complete and gap-free.

The time each takeover took is printed (from the kill until every submission accepted in
the first seconds after it — spread over all partitions — made it through); never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.bus import NOTIFY_ENV, SUPERVISOR, copy_config, key, new_secret, parse_metrics, scrape
from phoihop_embedded.stack import ServiceProcess, Stack
from phoihop_testkit.webhook_receiver import WebhookReceiver
from tests.faults.flow import (
    Flow,
    all_routed,
    audit_problems,
    delivered,
    expected,
    poll,
    quiet,
    redeliveries,
    settled_trails,
    webhook_problems,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

ALL_PATH = "/hook/all"
REPLICAS = {"routing": 2, "notify": 2, "audit": 2}
KILLS = ("routing", "notify", "audit")
MARK_WINDOW = 3.0  # submissions accepted this long after a kill mark the takeover
# ceilings only (conditions are polled): hold with the other core busy
TAKEOVER_TIMEOUT = 120.0
SETTLE_TIMEOUT = 180.0
FLOWING_TIMEOUT = 60.0
# a dead member is noticed after its session timeout (10 s by default; `make bench --only
# scale` reports takeovers with the defaults); 6 s here keeps the test short
SESSIONS = {
    "PHOIHOP_ROUTING_BROKER_SESSION_TIMEOUT": "6",
    "PHOIHOP_NOTIFY_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    "PHOIHOP_AUDIT_CONSUMER_SESSION_TIMEOUT_MS": "6000",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(keep_alive=True).start()
    yield r
    r.stop()


def _route(event: dict[str, Any]) -> str | None:
    """The one subscription: every routing outcome, jurisdiction-wide."""
    return ALL_PATH if event["type"] in ("assigned", "merged") else None


def _live(stack: Stack, service: str) -> ServiceProcess:
    """The first process of `service` that is still running."""
    for proc in stack.replica_procs(service):
        if proc.process is not None and proc.process.poll() is None:
            return proc
    raise AssertionError(f"no {service} process left")


def _webhooked(receiver: WebhookReceiver) -> dict[str, float]:
    """Recommendation id -> time of its first 2xx routing-outcome webhook."""
    first: dict[str, float] = {}
    for d in receiver.snapshot():
        if 200 <= d.status < 300:
            try:
                subject = str(d.json()["subject"])
            except (ValueError, KeyError, TypeError):
                continue
            first.setdefault(subject, d.received_at)
    return first


def _audited(audit_url: str, ids: list[str], done: dict[str, float]) -> dict[str, float]:
    """Adds to `done` the ids audit has a routing outcome for (time first seen)."""
    with httpx.Client(timeout=10, headers=key(SUPERVISOR)) as client:
        for rec_id in ids:
            if rec_id in done:
                continue
            try:
                resp = client.get(f"{audit_url}/v1/recommendations/{rec_id}")
            except httpx.HTTPError:
                continue
            if resp.status_code == 200 and resp.json().get("sequence", 0) >= 2:
                done[rec_id] = time.time()
    return done


def _partitions(url: str) -> int:
    """Partitions a consumer reported lag for so far (grows when it takes partitions over)."""
    return len(
        {
            (labels.get("topic"), labels.get("partition"))
            for name, labels, _ in parse_metrics(scrape(url))
            if name.endswith("_consumer_lag_records")
        }
    )


def _takeover(
    stack: Stack, flow: Flow, receiver: WebhookReceiver, service: str
) -> tuple[float | None, str]:
    """SIGKILL the first live process of `service`; seconds until the marks got through."""
    victim = _live(stack, service)
    survivors = [p for p in stack.replica_procs(service) if p is not victim]
    before = {p.name: _partitions(p.url) for p in survivors}
    t_kill = time.time()
    victim.kill()
    poll(lambda: time.time() > t_kill + MARK_WINDOW, timeout=MARK_WINDOW + 1, every=0.2)
    marks = flow.since(t_kill, t_kill + MARK_WINDOW)
    audited: dict[str, float] = {}

    def through() -> dict[str, float] | None:
        if service == "audit":
            done = _audited(_live(stack, "audit").url, marks, audited)
        else:
            done = _webhooked(receiver)
        return done if marks and all(i in done for i in marks) else None

    done = poll(through, timeout=TAKEOVER_TIMEOUT, every=0.5)
    after = {p.name: _partitions(p.url) for p in survivors}
    note = (
        f"killed {victim.name}; {len(marks)} marks; survivor partitions (lag gauges) "
        f"{before} -> {after}"
    )
    if not done:
        return None, note + f"; not through within {TAKEOVER_TIMEOUT:.0f} s"
    return round(max(done[i] for i in marks) - t_kill, 1), note


def test_survivors_take_over_with_nothing_lost_or_duplicated(
    stack_factory: Callable[..., Stack], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    t_start = time.monotonic()
    sub = {"agency": SUPERVISOR, "url": receiver.url(ALL_PATH), "secret": new_secret(),
           "event_types": ["assigned", "merged"], "scope": "jurisdiction"}  # fmt: skip
    config = copy_config(tmp_path / "config", [sub])
    env = {**NOTIFY_ENV, "PHOIHOP_NOTIFY_RETRY_SCHEDULE": "0,1,1,2,3,5,8,13", **SESSIONS}
    stack = stack_factory(config_dir=config, extra_env=env, replicas=REPLICAS)
    started_s = time.monotonic() - t_start
    # a modest steady rate: two submitters posting one at a time
    flow = Flow(stack.url("ingest"), bulk=0, singles=2, single_pause=0.1).start()
    takeovers: dict[str, tuple[float | None, str]] = {}
    try:
        assert poll(lambda: len(_webhooked(receiver)) >= 20, timeout=FLOWING_TIMEOUT), (
            f"not flowing: {len(flow.accepted)} accepted; attempts {dict(flow.attempts)}"
        )
        for service in KILLS:
            takeovers[service] = _takeover(stack, flow, receiver, service)
            print(f"takeover {service}: {takeovers[service][0]} s ({takeovers[service][1]})")
        poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.2)
    finally:
        flow.finish()
    ids = sorted(flow.accepted)
    context = f"{len(ids)} accepted; attempts {dict(flow.attempts)}; takeovers {takeovers}"
    assert len(ids) >= 100, f"too little flowed: {context}"

    # Settle: audit (the surviving replica) has a routing outcome for each, webhooks catch up.
    audit = _live(stack, "audit").url
    poll(partial(all_routed, audit, len(ids)), timeout=SETTLE_TIMEOUT, every=2.0)
    trails, _ = settled_trails(audit, ids, timeout=SETTLE_TIMEOUT)
    want = expected(trails, _route)
    poll(lambda: not want - delivered(receiver.snapshot()), timeout=SETTLE_TIMEOUT, every=2.0)
    quiet(lambda: len(receiver.snapshot()), quiet=3.0, timeout=30.0)  # stragglers too
    deliveries = receiver.snapshot()
    trails, problems = settled_trails(audit, ids, timeout=30.0)  # after the stragglers
    print(
        f"scale-out: stack up in {started_s:.0f} s, {len(ids)} accepted, {len(want)} webhooks "
        f"expected, {len(deliveries)} requests ({redeliveries(deliveries)} redeliveries with "
        f"the same webhook-id), wall {time.monotonic() - t_start:.0f} s; takeover s: "
        + ", ".join(f"{k} {v[0]}" for k, v in takeovers.items())
    )

    assert not problems, f"{len(problems)} bad trails: {problems[:10]}; {context}"
    problems = audit_problems(audit, trails)
    assert not problems, f"audit: {problems[:10]}; {context}"
    problems = webhook_problems(deliveries, want)
    assert not problems, f"webhooks: {problems[:10]}; {context}"
    for service in KILLS:  # the survivors are healthy
        stack.wait_ready(services=(_live(stack, service).name,), timeout=30)
