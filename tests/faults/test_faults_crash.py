"""Nothing lost, nothing duplicated: SIGKILL every service, pause the broker, fail webhooks,
cut audit off its database — all while a stream of recommendations flows."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.bus import (
    NOTIFY_ENV,
    SUBMITTER,
    SUPERVISOR,
    bulk_sync,
    copy_config,
    key,
    new_secret,
)
from bench.texts import generate
from phoihop_common.config import load_reference
from phoihop_embedded.stack import Stack
from phoihop_testkit.webhook_receiver import Delivery, WebhookReceiver
from tests.faults.tcp_proxy import TcpProxy

# The ceilings hold with the other core busy (a second suite, `stress --cpu 1`): every wait
# is a condition polled up to a generous limit; only the faults' own durations are fixed.
pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

ALL_PATH = "/hook/all"
MAX_SUBMISSIONS = 3000
SETTLE_TIMEOUT = 180.0
READY_TIMEOUT = 180.0
FLOWING_TIMEOUT = 60.0
# Agencies with an addressed webhook subscription (a subset keeps delivery volume bounded).
ADDRESSED = ("SO_XAY_DUNG", "SO_NN_MT", "UBND_XA_XA_AN_BINH", "UBND_XA_PHUONG_BAC_SON",
             "DOAN_DBQH", "TT_HDND")  # fmt: skip


@dataclass
class Flow:
    """Submissions posted from background threads until stopped; ids that got an id back."""

    ingest_url: str
    accepted: dict[str, str] = field(default_factory=dict)  # id -> how (single / bulk)
    attempts: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def bodies(self, n: int) -> list[dict[str, Any]]:
        """Fresh distinct bodies."""
        with self._lock:
            start, self._next = self._next, self._next + n
        return [g.body for g in generate(n, seed=3, start=start)]

    def _room(self) -> bool:
        return not self.stop.is_set() and len(self.accepted) < MAX_SUBMISSIONS

    def flowing(self, since: int, *, more: int = 20) -> bool:
        """`more` submissions accepted since `since` (or the flow is full)."""
        return len(self.accepted) >= min(since + more, MAX_SUBMISSIONS)

    def _bulk(self) -> None:
        with httpx.Client(timeout=60) as client:
            while self._room():
                res = bulk_sync(client, self.ingest_url, self.bodies(40))
                self.attempts[f"bulk:{res.status}"] += 1
                for rec_id in res.ids:  # rows with an id are on the broker, 2xx or not
                    self.accepted[rec_id] = "bulk"
                self.stop.wait(1.5)

    def _single(self) -> None:
        with httpx.Client(timeout=30) as client:
            while self._room():
                body = self.bodies(1)[0]
                headers = {**key(SUBMITTER), "Idempotency-Key": str(uuid.uuid4())}
                for _ in range(4):  # retried with the same key: at most one case
                    try:
                        resp = client.post(
                            f"{self.ingest_url}/v1/recommendations", json=body, headers=headers
                        )
                    except httpx.HTTPError as exc:
                        self.attempts[f"single:{type(exc).__name__}"] += 1
                        self.stop.wait(0.5)
                        continue
                    self.attempts[f"single:{resp.status_code}"] += 1
                    if resp.status_code == 202:
                        self.accepted[str(resp.json()["id"])] = "single"
                        break
                    self.stop.wait(0.5)
                self.stop.wait(0.2)

    def start(self) -> Flow:
        """One bulk importer and three single submitters."""
        for target in (self._bulk, self._single, self._single, self._single):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def finish(self) -> None:
        """Stop and wait for the threads."""
        self.stop.set()
        for t in self._threads:
            t.join(timeout=90)


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


def _poll(fn: Callable[[], Any], *, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last = fn()
    while not last and time.monotonic() < deadline:
        time.sleep(every)
        last = fn()
    return last


def _quiet(measure: Callable[[], int], *, quiet: float, timeout: float) -> None:
    """Wait until `measure()` has not changed for `quiet` seconds (at most `timeout`)."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()


def _kill_and_restart(stack: Stack, name: str) -> None:
    proc = stack.procs[name]
    proc.kill()  # reaped: its ports are free again
    proc.restart()
    stack.wait_ready(services=(name,), timeout=READY_TIMEOUT)


def _all_routed(stack: Stack, count: int) -> bool:
    """Audit knows `count` recommendations and none is still waiting for routing.

    Read from audit's read model, not from its `events_stored` counter: that counter starts
    again from zero when audit is restarted, so it would never reach `count`.
    """
    url = f"{stack.url('audit')}/v1/recommendations"
    try:
        with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client:
            known = client.get(url, params={"page_size": 1}).json()["total"]
            waiting = client.get(url, params={"status": "received", "page_size": 1}).json()
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(known >= count and waiting["total"] == 0)


def _delivered(deliveries: list[Delivery]) -> set[tuple[str, str]]:
    """(event id, path) of every 2xx delivery."""
    done: set[tuple[str, str]] = set()
    for d in deliveries:
        if 200 <= d.status < 300:
            try:
                done.add((str(d.json()["id"]), d.path))
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _expected(trails: dict[str, dict[str, Any] | None]) -> set[tuple[str, str]]:
    """(event id, path) every subscription should have received."""
    expected: set[tuple[str, str]] = set()
    for trail in trails.values():
        for e in (trail or {}).get("events", []):
            if e["type"] == "merged":
                expected.add((e["event_id"], ALL_PATH))
            if e["type"] == "assigned" and e["data"]["agency"] in ADDRESSED:
                expected.add((e["event_id"], f"/hook/{e['data']['agency']}"))
    return expected


def _trails(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    def one(client: httpx.Client, rec_id: str) -> tuple[str, dict[str, Any] | None]:
        resp = client.get(f"{stack.url('audit')}/v1/recommendations/{rec_id}/trail")
        return rec_id, resp.json() if resp.status_code == 200 else None

    with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client, ThreadPoolExecutor(8) as ex:
        return dict(ex.map(lambda i: one(client, i), ids))


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
        assert _poll(lambda: len(flow.accepted) >= 100, timeout=120), flow.attempts
        for name in ("ingest", "routing", "notify", "audit"):
            _poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.2)
            _kill_and_restart(stack, name)
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
        _poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.2)
    finally:
        flow.finish()
    accepted = dict(flow.accepted)
    ids = sorted(accepted)
    assert len(ids) >= 500, f"too little flowed: {len(ids)}; attempts {dict(flow.attempts)}"

    # Settle: audit has stored a routing outcome for each, then the webhooks catch up.
    _poll(partial(_all_routed, stack, len(ids)), timeout=SETTLE_TIMEOUT, every=2.0)
    trails = _trails(stack, ids)
    expected = _expected(trails)
    _poll(lambda: not expected - _delivered(receiver.snapshot()), timeout=SETTLE_TIMEOUT, every=2.0)
    # stragglers (duplicates, if any) arrive so they are checked too
    _quiet(lambda: len(receiver.snapshot()), quiet=3.0, timeout=30.0)
    deliveries = receiver.snapshot()
    context = f"faults: {faults}; {len(ids)} accepted; attempts {dict(flow.attempts)}"

    # 1. Every accepted submission is in the audit trail, each event once, no sequence gap.
    missing = [i for i, t in trails.items() if t is None]
    assert not missing, (
        f"{len(missing)} accepted ids unknown to audit, e.g. {missing[:5]}; {context}"
    )
    event_ids: Counter[str] = Counter()
    problems: list[str] = []
    for rec_id, trail in trails.items():
        assert trail is not None
        events = trail["events"]
        event_ids.update(e["event_id"] for e in events)
        seqs = [e["sequence"] for e in events]
        types = Counter(e["type"] for e in events)
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{rec_id}: sequences {seqs}")
        if types["received"] != 1:
            problems.append(f"{rec_id}: {types['received']} received events")
        if types["assigned"] + types["merged"] < 1:
            problems.append(f"{rec_id}: never routed, trail {dict(types)}")
        reassigned = types["declined"] + types["reopened"]
        if types["assigned"] > 1 + reassigned or types["merged"] > 1:
            problems.append(f"{rec_id}: duplicate effects {dict(types)}")
        if trail.get("missing_sequences"):
            problems.append(f"{rec_id}: audit reports missing {trail['missing_sequences']}")
    assert not problems, f"{len(problems)} bad trails: {problems[:10]}; {context}"
    dup_events = [e for e, n in event_ids.items() if n > 1]
    assert not dup_events, f"event ids stored twice: {dup_events[:5]}; {context}"

    # 2. Audit's own reconciliation and chain agree.
    with httpx.Client(timeout=60, headers=key(SUPERVISOR)) as client:
        rec = client.get(f"{stack.url('audit')}/v1/audit/reconciliation")
        if rec.status_code != 404:
            assert rec.status_code == 200, rec.text
            assert not rec.json().get("gaps"), f"reconciliation: {rec.text[:1000]}"
        verify = client.get(f"{stack.url('audit')}/v1/audit/verify")
        assert verify.status_code == 200, verify.text
        assert verify.json()["ok"] is True, verify.text[:1000]
        sample = ids[:: max(1, len(ids) // 50)]
        for rec_id in sample:  # the status read model answers for them too
            status = client.get(f"{stack.url('audit')}/v1/recommendations/{rec_id}")
            assert status.status_code == 200, status.text
            assert status.json()["sequence"] == len(trails[rec_id]["events"])  # type: ignore[index]

    # 3. Every subscribed webhook was delivered, with one webhook-id per (event, endpoint).
    hook_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    ok: set[tuple[str, str]] = set()
    for d in deliveries:
        try:
            event_id = str(d.json()["id"])
        except (ValueError, KeyError, TypeError):
            continue
        hook_ids[(event_id, d.path)].add(d.headers.get("webhook-id", ""))
        if 200 <= d.status < 300:
            ok.add((event_id, d.path))
    unstable = {k: v for k, v in hook_ids.items() if len(v) != 1 or "" in v}
    assert not unstable, f"webhook-id not stable: {list(unstable.items())[:5]}; {context}"
    undelivered = sorted(expected - ok)
    assert not undelivered, (
        f"{len(undelivered)} of {len(expected)} webhooks never delivered, "
        f"e.g. {undelivered[:5]}; {context}"
    )
    per_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
    for (_event, path), hooks in hook_ids.items():
        per_endpoint[path].update(hooks)
    shared = {p: [h for h, n in c.items() if n > 1] for p, c in per_endpoint.items()}
    assert not any(shared.values()), f"two events share a webhook-id at one endpoint: {shared}"
