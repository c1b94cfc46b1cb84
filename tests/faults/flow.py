"""What the fault tests share: a flow of submissions and the exactly-once / trail checks.

`Flow` posts distinct submissions from background threads until stopped; `kill_and_restart`
SIGKILLs services and starts them again; the checks read audit's trails and a webhook
receiver's deliveries (used by `test_faults_crash`, `test_faults_scale_out` and
`test_faults_poison_restart`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.bus import SUBMITTER, SUPERVISOR, bulk_sync, key
from bench.texts import generate
from phoihop_embedded.stack import Stack
from phoihop_testkit.webhook_receiver import Delivery

Trails = dict[str, dict[str, Any] | None]
# which endpoint path (if any) should get a webhook for one stored event
Route = Callable[[dict[str, Any]], str | None]


@dataclass
class Flow:
    """Submissions posted from background threads until stopped; ids that got an id back.

    `bulk` importer threads post 40 rows every 1.5 s; `singles` threads post one at a time,
    waiting `single_pause` seconds between two. When each id was accepted is in `accepted_at`.
    """

    ingest_url: str
    bulk: int = 1
    singles: int = 3
    single_pause: float = 0.2
    max_submissions: int = 3000
    accepted: dict[str, str] = field(default_factory=dict)  # id -> how (single / bulk)
    accepted_at: dict[str, float] = field(default_factory=dict)  # id -> time.time()
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
        return not self.stop.is_set() and len(self.accepted) < self.max_submissions

    def flowing(self, since: int, *, more: int = 20) -> bool:
        """`more` submissions accepted since `since` (or the flow is full)."""
        return len(self.accepted) >= min(since + more, self.max_submissions)

    def since(self, t0: float, t1: float) -> list[str]:
        """Ids accepted between the times `t0` and `t1` (`time.time()`)."""
        return [i for i, t in list(self.accepted_at.items()) if t0 <= t < t1]

    def _accept(self, rec_id: str, how: str) -> None:
        self.accepted_at.setdefault(rec_id, time.time())
        self.accepted[rec_id] = how

    def _bulk(self) -> None:
        with httpx.Client(timeout=60) as client:
            while self._room():
                res = bulk_sync(client, self.ingest_url, self.bodies(40))
                self.attempts[f"bulk:{res.status}"] += 1
                for rec_id in res.ids:  # rows with an id are on the broker, 2xx or not
                    self._accept(rec_id, "bulk")
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
                        self._accept(str(resp.json()["id"]), "single")
                        break
                    self.stop.wait(0.5)
                self.stop.wait(self.single_pause)

    def start(self) -> Flow:
        """The bulk importers and the single submitters."""
        for target in [self._bulk] * self.bulk + [self._single] * self.singles:
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def finish(self) -> None:
        """Stop and wait for the threads."""
        self.stop.set()
        for t in self._threads:
            t.join(timeout=90)


def kill_and_restart(stack: Stack, *names: str, timeout: float) -> None:
    """SIGKILL the processes together (reaped: their ports are free again), start them
    again, wait until they are ready."""
    for name in names:
        stack.procs[name].kill()
    for name in names:
        stack.procs[name].restart()
    stack.wait_ready(services=names, timeout=timeout)


def poll(fn: Callable[[], Any], *, timeout: float, every: float = 1.0) -> Any:
    """`fn()` until truthy or `timeout` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    last = fn()
    while not last and time.monotonic() < deadline:
        time.sleep(every)
        last = fn()
    return last


def quiet(measure: Callable[[], int], *, quiet: float, timeout: float) -> None:
    """Wait until `measure()` has not changed for `quiet` seconds (at most `timeout`)."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()


def all_routed(audit_url: str, count: int) -> bool:
    """Audit knows `count` recommendations and none is still waiting for routing.

    Read from audit's read model, not from its `events_stored` counter: that counter starts
    again from zero when audit is restarted, so it would never reach `count`.
    """
    url = f"{audit_url}/v1/recommendations"
    try:
        with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client:
            known = client.get(url, params={"page_size": 1}).json()["total"]
            waiting = client.get(url, params={"status": "received", "page_size": 1}).json()
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(known >= count and waiting["total"] == 0)


def delivered(deliveries: list[Delivery]) -> set[tuple[str, str]]:
    """(event id, path) of every 2xx delivery."""
    done: set[tuple[str, str]] = set()
    for d in deliveries:
        if 200 <= d.status < 300:
            try:
                done.add((str(d.json()["id"]), d.path))
            except (ValueError, KeyError, TypeError):
                continue
    return done


def expected(trails: Trails, route: Route) -> set[tuple[str, str]]:
    """(event id, path) every subscription should have received."""
    out: set[tuple[str, str]] = set()
    for trail in trails.values():
        for e in (trail or {}).get("events", []):
            path = route(e)
            if path is not None:
                out.add((e["event_id"], path))
    return out


def fetch_trails(audit_url: str, ids: list[str]) -> Trails:
    """Each id's trail from audit (None: unknown)."""

    def one(client: httpx.Client, rec_id: str) -> tuple[str, dict[str, Any] | None]:
        resp = client.get(f"{audit_url}/v1/recommendations/{rec_id}/trail")
        return rec_id, resp.json() if resp.status_code == 200 else None

    with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client, ThreadPoolExecutor(8) as ex:
        return dict(ex.map(lambda i: one(client, i), ids))


def settled_trails(
    audit_url: str,
    ids: list[str],
    *,
    timeout: float,
    problems: Callable[[Trails], list[str]] | None = None,
) -> tuple[Trails, list[str]]:
    """The trails and their problems, read again until there are none (or `timeout` s pass).

    `problems` defaults to `trail_problems`. `all_routed` counts every recommendation audit
    knows, including ones the flow never saw accepted (sent while ingest was killed), and a
    batch may store an event's successor (`duplicate_suggested` after `assigned`) a moment
    later: one snapshot can be early.
    """
    check = problems or trail_problems
    deadline = time.monotonic() + timeout
    while True:
        trails = fetch_trails(audit_url, ids)
        found = check(trails)
        if not found or time.monotonic() > deadline:
            return trails, found
        time.sleep(2.0)


def trail_problems(trails: Trails) -> list[str]:
    """Every accepted id stored, each event once, sequences 1..n, routed exactly once."""
    problems = [f"{i}: unknown to audit" for i, t in trails.items() if t is None]
    event_ids: Counter[str] = Counter()
    for rec_id, trail in trails.items():
        if trail is None:
            continue
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
    problems += [f"event id stored twice: {e}" for e, n in event_ids.items() if n > 1]
    return problems


def webhook_problems(deliveries: list[Delivery], want: set[tuple[str, str]]) -> list[str]:
    """Exactly once per (event, endpoint): all delivered, one stable webhook-id each.

    A redelivery (a dispatcher killed after the send, before recording it) is legitimate as
    long as it carries the same webhook-id, by which the subscriber de-duplicates.
    """
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
    problems = [
        f"webhook-id not stable for {k}: {sorted(v)}"
        for k, v in hook_ids.items()
        if len(v) != 1 or "" in v
    ]
    undelivered = sorted(want - ok)
    if undelivered:
        problems.append(
            f"{len(undelivered)} of {len(want)} webhooks never delivered, e.g. {undelivered[:5]}"
        )
    per_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
    for (_event, path), hooks in hook_ids.items():
        per_endpoint[path].update(hooks)
    for path, counts in per_endpoint.items():
        shared = [h for h, n in counts.items() if n > 1]
        if shared:
            problems.append(f"two events share a webhook-id at {path}: {shared[:5]}")
    return problems


def redeliveries(deliveries: list[Delivery]) -> int:
    """2xx deliveries beyond the first of the same webhook-id at the same endpoint."""
    seen: Counter[tuple[str, str]] = Counter(
        (d.path, d.headers.get("webhook-id", "")) for d in deliveries if 200 <= d.status < 300
    )
    return sum(n - 1 for n in seen.values())


def audit_problems(audit_url: str, trails: Trails) -> list[str]:
    """Audit's reconciliation reports no gap, its chain verifies, the status agrees (sample)."""
    problems: list[str] = []
    with httpx.Client(timeout=60, headers=key(SUPERVISOR)) as client:
        rec = client.get(f"{audit_url}/v1/audit/reconciliation")
        if rec.status_code != 404:
            if rec.status_code != 200:
                problems.append(f"reconciliation: {rec.status_code} {rec.text[:300]}")
            elif rec.json().get("gaps"):
                problems.append(f"reconciliation: {rec.text[:1000]}")
        verify = client.get(f"{audit_url}/v1/audit/verify")
        if verify.status_code != 200 or verify.json().get("ok") is not True:
            problems.append(f"verify: {verify.status_code} {verify.text[:1000]}")
        ids = sorted(trails)
        for rec_id in ids[:: max(1, len(ids) // 50)]:  # the status read model answers for them
            trail = trails[rec_id]
            status = client.get(f"{audit_url}/v1/recommendations/{rec_id}")
            if status.status_code != 200:
                problems.append(f"status of {rec_id}: {status.status_code} {status.text[:300]}")
            elif trail is not None and status.json()["sequence"] != len(trail["events"]):
                problems.append(f"status of {rec_id}: sequence {status.json()['sequence']}")
    return problems
