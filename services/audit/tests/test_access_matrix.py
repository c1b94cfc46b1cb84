"""Access matrix: every role × every endpoint × own / other's / merged-into / denunciation.

Cases are built through the real consumer path (canonical events produced to the broker and
consumed by the app, on SQLite, or PostgreSQL when PHOIHOP_TEST_DATABASE_URL is set). What
each agency may read is derived from the one policy (`phoihop_common.access.readable`) over
the cases' facts, never written per case; the test asserts the exact status codes, that what
the policy grants is there, and that nothing it withholds appears anywhere in any body.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from openpyxl import load_workbook
from pydantic import BaseModel
from sqlalchemy import func, select

from phoihop_audit.app import Runtime, create_app
from phoihop_audit.db import events as events_table
from phoihop_audit.readmodel import iso
from phoihop_audit.settings import AuditSettings
from phoihop_common.access import Case, Resource, readable
from phoihop_common.config import Reference
from phoihop_common.kafka import KafkaSettings, producer_kwargs
from phoihop_schemas import codec
from phoihop_schemas.events import (
    Answered,
    Assigned,
    Decision,
    Merged,
    NotificationOutcome,
    Reporter,
)
from phoihop_schemas.topics import CANONICAL

pytestmark = pytest.mark.integration

# One agency per role (agencies.yaml); a case's own relations come from the scenario below.
ROLES = {
    "supervisor": "UBMTTQ_TINH",
    "supervisor+triage": "TT_HDND",
    "resolver-assignee": "SO_XAY_DUNG",
    "resolver-past-assignee": "SO_GD_DT",
    "resolver-other": "SO_Y_TE",
    "submitter": "SO_TU_PHAP",
    "source": "SO_NN_MT",
}
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
MONTH = "2026-05"  # T0 lies in it
RULE = Decision(rule="test-rule", version="1")
DEADLINE = T0 + timedelta(days=30)


def _marker(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Spec:
    """One case of the scenario: its facts, and unique markers to look for in bodies."""

    kind: str
    submitted_by: str
    assignees: tuple[str, ...] = ()  # in order; the last one settles it now
    duplicate_of: Spec | None = None
    answered: bool = False
    outcomes: tuple[str, ...] = ()  # agencies whose subscription got a delivery of it
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    text: str = field(default_factory=lambda: _marker("vanban"))
    answer: str = field(default_factory=lambda: _marker("traloi"))
    name: str = field(default_factory=lambda: _marker("nguoi"))
    phone: str = field(default_factory=lambda: f"09{random.randrange(10**8):08d}")

    def sub(self, agency: str) -> str:
        """The id of `agency`'s subscription that got this case's delivery."""
        return f"sub-{agency}-{self.id[:8]}"

    def facts(self, specs: Iterable[Spec]) -> Case:
        """What the policy decides on (from the scenario, not from audit's read model)."""
        now = self.assignees[-1] if self.assignees else None
        return Case(
            kind=self.kind,
            submitted_by=self.submitted_by,
            assignee=now,
            past_assignees=frozenset(self.assignees) - {now},
            sources=frozenset(s.submitted_by for s in specs if s.duplicate_of is self),
            duplicate_of=self.duplicate_of.id if self.duplicate_of else None,
        )

    def events(self, ev: Any) -> list[BaseModel]:
        """The canonical events ingest, routing and notify would have published."""
        out: list[BaseModel] = [
            ev.received(
                self.id,
                kind=self.kind,
                text=f"Nội dung kiến nghị {self.text}",
                submitted_by=self.submitted_by,
                reporter=Reporter(name=f"Công dân {self.name}", phone=self.phone),
            )
        ]
        seq = 1
        if self.duplicate_of is not None:
            seq += 1
            out.append(
                Merged(
                    recommendation_id=self.id,
                    sequence=seq,
                    occurred_at=T0 + timedelta(hours=1),
                    duplicate_of=self.duplicate_of.id,
                    similarity=0.95,
                    decision=RULE,
                    submitted_by=self.submitted_by,
                )
            )
        for hop, agency in enumerate(self.assignees):
            seq += 1
            out.append(_assigned(self, seq=seq, agency=agency, hop=hop))
        if self.answered:
            seq += 1
            out.append(_answered(self, seq=seq, recipients=(self.submitted_by,)))
        for agency in self.outcomes:
            out.append(
                NotificationOutcome(
                    recommendation_id=self.id,
                    event_id=codec.lifecycle_event_id(self.id, 1),
                    event_type="received",
                    subscription_id=self.sub(agency),
                    agency=agency,
                    channel="webhook",
                    attempt=1,
                    outcome="delivered",
                    status_code=204,
                    latency_ms=3.0,
                    attempted_at=T0 + timedelta(minutes=1),
                )
            )
        return out


def _assigned(spec: Spec, *, seq: int, agency: str, hop: int = 0) -> Assigned:
    return Assigned(
        recommendation_id=spec.id,
        sequence=seq,
        occurred_at=T0 + timedelta(hours=seq),
        agency=agency,
        category="GIAO_THONG",
        level="tinh",
        kind=spec.kind,
        locality="xa-an-binh",
        deadline=DEADLINE,
        decision=RULE,
        hop=hop,
    )


def _answered(spec: Spec, *, seq: int, recipients: tuple[str, ...]) -> Answered:
    return Answered(
        recommendation_id=spec.id,
        sequence=seq,
        occurred_at=T0 + timedelta(days=3),
        agency=spec.assignees[-1],
        text=f"Trả lời {spec.answer}",
        on_time=True,
        recipients=recipients,
    )


def scenario() -> list[Spec]:
    """Own submissions, another agency's case, cases merged into, denunciations."""
    x = Spec(
        kind="kien_nghi",
        submitted_by=ROLES["submitter"],
        assignees=(ROLES["resolver-past-assignee"], ROLES["resolver-assignee"]),
        answered=True,
        outcomes=(ROLES["resolver-assignee"], ROLES["supervisor+triage"], ROLES["submitter"],
                  ROLES["source"], ROLES["supervisor"]),
    )  # fmt: skip
    r = Spec(
        kind="kien_nghi",
        submitted_by=ROLES["source"],
        duplicate_of=x,
        outcomes=(ROLES["source"], ROLES["supervisor+triage"]),
    )
    r2 = Spec(kind="kien_nghi", submitted_by="SO_CONG_THUONG", duplicate_of=x)
    d = Spec(
        kind="to_cao",
        submitted_by=ROLES["submitter"],
        assignees=(ROLES["resolver-assignee"],),
        outcomes=(ROLES["resolver-assignee"], ROLES["supervisor+triage"]),
    )
    rd = Spec(kind="to_cao", submitted_by=ROLES["source"], duplicate_of=d)
    other = Spec(
        kind="kien_nghi",
        submitted_by="DOAN_DBQH",
        assignees=("SO_CONG_THUONG",),
        answered=True,
        outcomes=("SO_CONG_THUONG", ROLES["supervisor+triage"]),
    )
    return [x, r, r2, d, rd, other]


# --------------------------------------------------------------------------- the bus


@dataclass
class Audit:
    """The audit app consuming from the broker, and its HTTP client."""

    client: httpx.AsyncClient
    rt: Runtime
    bootstrap: str
    produced: int = 0

    async def publish(self, models: Iterable[BaseModel]) -> None:
        """Produce canonical events and wait until the consumer has stored them all."""
        producer = AIOKafkaProducer(
            **producer_kwargs(KafkaSettings(kafka_bootstrap=self.bootstrap))
        )
        await producer.start()
        try:
            for model in models:
                record = codec.encode(model, source="/phoihop/routing")
                topic = CANONICAL[type(model).event_name].name
                await producer.send_and_wait(
                    topic, value=record.value, key=record.key, headers=record.headers
                )
                self.produced += 1
        finally:
            await producer.stop()
        deadline = time.monotonic() + 60
        while self._stored() < self.produced:
            assert time.monotonic() < deadline, f"stored {self._stored()} of {self.produced}"
            await asyncio.sleep(0.1)

    def _stored(self) -> int:
        with self.rt.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(events_table)
                    .where(events_table.c.source == "/phoihop/routing")
                ).scalar_one()
            )

    def get(self, path: str, agency: str, **params: Any) -> Any:
        """GET as `agency` (a coroutine)."""
        return self.client.get(path, headers={"X-API-Key": f"dev-{agency}"}, params=params)


@pytest.fixture
async def audit(settings: AuditSettings, kafka_bootstrap: str) -> AsyncIterator[Audit]:
    """The audit app with its Kafka consumer on a fresh broker, ready."""
    consuming = settings.model_copy(
        update={"kafka_bootstrap": kafka_bootstrap, "consumer_group": f"audit-{uuid.uuid4()}"}
    )
    app = create_app(consuming, consume=True)
    async with (
        LifespanManager(app, startup_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://audit", timeout=30
        ) as http,
    ):
        deadline = time.monotonic() + 60
        while (await http.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "audit consumer never became ready"
            await asyncio.sleep(0.1)
        yield Audit(client=http, rt=app.state.rt, bootstrap=kafka_bootstrap)


def _xlsx_text(content: bytes) -> str:
    book = load_workbook(io.BytesIO(content), read_only=True)
    return "\n".join(
        str(cell) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
        for cell in row if cell is not None
    )  # fmt: skip


def _xlsx_total(content: bytes) -> Any:
    book = load_workbook(io.BytesIO(content), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    (total,) = [r for r in rows if r[1] == "Tổng cộng"]
    return total[2]


async def _unknown_404(audit: Audit, agency: str, path: str) -> tuple[int, Any]:
    """Status and body of the same request on an id that does not exist (id put back)."""
    ghost = str(uuid.uuid4())
    resp = await audit.get(path.format(id=ghost), agency)
    return resp.status_code, resp.text.replace(ghost, "{id}")


# --------------------------------------------------------------------------- the matrix


@dataclass
class Seen:
    """Every body one agency was sent, with where it came from."""

    bodies: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        """Keep a body."""
        self.bodies.append((where, text))

    def leaks(self, forbidden: dict[str, str]) -> list[str]:
        """Every (what, where) a forbidden value appears."""
        return [
            f"{what} ({value}) in {where}"
            for what, value in forbidden.items()
            for where, text in self.bodies
            if value in text
        ]


async def test_access_matrix_generated_from_the_policy(audit: Audit, ev: Any) -> None:
    specs = scenario()
    await audit.publish(m for s in specs for m in s.events(ev))
    reference: Reference = audit.rt.reference
    facts = {s.id: s.facts(specs) for s in specs}
    status_path, trail_path = "/v1/recommendations/{id}", "/v1/recommendations/{id}/trail"
    problems: list[str] = []
    disclosed: dict[str, set[str]] = {s.id: set() for s in specs}

    for role, agency in ROLES.items():
        rights = {s.id: readable(reference, agency=agency, case=facts[s.id]) for s in specs}
        seen = Seen()
        for path, need in ((status_path, Resource.STATUS), (trail_path, Resource.TRAIL)):
            missing = await _unknown_404(audit, agency, path)
            for s in specs:
                resp = await audit.get(path.format(id=s.id), agency)
                where = f"{role} {path.format(id=s.id[:8])}"
                # A 404 names the id the caller asked for (and is compared to an unknown id's).
                seen.add(where, resp.text if resp.status_code != 404 else "")
                expected = 200 if need in rights[s.id] else 404
                if resp.status_code != expected:
                    problems.append(f"{where}: {resp.status_code}, expected {expected}")
                    continue
                if expected == 404:  # exactly as an unknown id: no existence oracle
                    if (resp.status_code, resp.text.replace(s.id, "{id}")) != missing:
                        problems.append(f"{where}: 404 differs from an unknown id's")
                    continue
                body = resp.text
                granted = rights[s.id]
                checks = {
                    "text": (Resource.TEXT in granted, s.text in body),
                    "reporter": (Resource.REPORTER in granted, s.name in body),
                    "no-store": (
                        Resource.REPORTER in granted,
                        resp.headers.get("cache-control") == "no-store",
                    ),
                    "answer": (
                        Resource.ANSWERS in granted and s.answered,
                        s.answer in body,
                    ),
                }
                for what, (want, got) in checks.items():
                    if want != got:
                        problems.append(f"{where}: {what} shown={got}, policy says {want}")
                if Resource.REPORTER in granted:
                    disclosed[s.id].add(agency)
                if path == trail_path:
                    notes = resp.json()["notifications"]
                    if {n["data"]["agency"] for n in notes} - {agency}:
                        problems.append(f"{where}: another agency's delivery outcome shown")
                    own = Resource.NOTIFICATIONS in granted and agency in s.outcomes
                    if len(notes) != int(own):
                        problems.append(f"{where}: {len(notes)} outcomes, expected {int(own)}")

        # Search: exactly the cases whose status it may read; text only where it may read it.
        listed = await audit.get("/v1/recommendations", agency, page_size=200)
        seen.add(f"{role} search", listed.text)
        want_ids = {s.id for s in specs if Resource.STATUS in rights[s.id]}
        got_ids = {i["id"] for i in listed.json()["items"]}
        if listed.status_code != 200 or got_ids != want_ids:
            problems.append(f"{role} search: {len(got_ids)} cases, expected {len(want_ids)}")
        for s in specs:
            found = await audit.get("/v1/recommendations", agency, q=s.text)
            seen.add(f"{role} search q", found.text)
            hits = {i["id"] for i in found.json()["items"]}
            if hits != ({s.id} if Resource.TEXT in rights[s.id] else set()):
                problems.append(f"{role} search q={s.text}: {hits}")

        # Reports count exactly the readable cases, in every format.
        report = await audit.get("/v1/reports", agency, month=MONTH)
        seen.add(f"{role} report json", report.text)
        as_csv = await audit.get("/v1/reports", agency, month=MONTH, format="csv")
        seen.add(f"{role} report csv", as_csv.text)
        as_xlsx = await audit.get("/v1/reports", agency, month=MONTH, format="xlsx")
        seen.add(f"{role} report xlsx", _xlsx_text(as_xlsx.content))
        (csv_total,) = [r for r in csv.DictReader(io.StringIO(as_csv.text)) if r["key"] == "TOTAL"]
        totals = (
            report.json()["total"]["received"],
            int(csv_total["received"]),
            _xlsx_total(as_xlsx.content),
        )
        codes = (report.status_code, as_csv.status_code, as_xlsx.status_code)
        if codes != (200, 200, 200) or set(totals) != {len(want_ids)}:
            problems.append(f"{role} reports: {codes} {totals}, expected {len(want_ids)}")

        # Nothing the policy withholds appears anywhere in anything this agency was sent.
        merged_into = {
            s.duplicate_of.id: s for s in specs
            if s.duplicate_of is not None and Resource.STATUS in rights[s.id]
        }  # fmt: skip
        forbidden: dict[str, str] = {}
        for s in specs:
            short = s.id[:8]
            if Resource.TEXT not in rights[s.id]:
                forbidden[f"text of {short}"] = s.text
            if Resource.REPORTER not in rights[s.id]:
                forbidden[f"reporter name of {short}"] = s.name
                forbidden[f"reporter phone of {short}"] = s.phone
            via_own = s.id in merged_into and Resource.ANSWERS in rights[merged_into[s.id].id]
            if Resource.ANSWERS not in rights[s.id] and not via_own:
                forbidden[f"answer of {short}"] = s.answer
            if Resource.STATUS not in rights[s.id] and s.id not in merged_into:
                forbidden[f"id of {short}"] = s.id
            for other in s.outcomes:
                if other != agency:
                    forbidden[f"{other}'s subscription on {short}"] = s.sub(other)
        problems.extend(f"{role}: {leak}" for leak in seen.leaks(forbidden))

    # Every response that carried a reporter left a `reporter_disclosed` entry, and no other.
    for s in specs:
        log = await audit.get(
            trail_path.format(id=s.id), ROLES["supervisor+triage"], reporter=False
        )
        logged = {d["data"]["agency"] for d in log.json()["disclosures"]}
        if logged != disclosed[s.id]:
            problems.append(f"disclosures of {s.id[:8]}: {logged}, expected {disclosed[s.id]}")

    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the side door


@pytest.mark.parametrize("kind", ["kien_nghi", "to_cao"])
async def test_a_merge_never_opens_the_case_it_was_merged_into(
    audit: Audit, ev: Any, kind: str
) -> None:
    me, them = "SO_XAY_DUNG", "SO_Y_TE"
    x = Spec(kind=kind, submitted_by="UBMTTQ_TINH", assignees=(them,))
    mine = Spec(kind=kind, submitted_by=me, duplicate_of=x)
    await audit.publish([*x.events(ev), *mine.events(ev)])

    for path in ("/v1/recommendations/{id}", "/v1/recommendations/{id}/trail"):
        resp = await audit.get(path.format(id=x.id), me)
        assert (resp.status_code, resp.text.replace(x.id, "{id}")) == await _unknown_404(
            audit, me, path
        )
    listed = (await audit.get("/v1/recommendations", me)).json()
    assert [i["id"] for i in listed["items"]] == [mine.id]
    assert (await audit.get("/v1/recommendations", me, q=x.text)).json()["items"] == []

    own = await audit.get(f"/v1/recommendations/{mine.id}", me)
    body = own.json()
    assert body["status"] == "merged"
    assert body["duplicate_of"] == x.id
    assert body["merged_into"] == {
        "id": x.id,
        "status": "assigned",
        "agency": them,
        "deadline": iso(DEADLINE.replace(tzinfo=None)),
        "answered_at": None,
        "answers": [],
    }
    assert body["reporter"]["name"].endswith(mine.name)  # its own reporter
    for secret in (x.text, x.name, x.phone):
        assert secret not in own.text

    # Once the case is answered, the source learns the answer through its own recommendation.
    await audit.publish([_answered(x, seq=3, recipients=(x.submitted_by, me))])
    later = (await audit.get(f"/v1/recommendations/{mine.id}", me, reporter=False)).json()
    assert later["merged_into"]["status"] == "answered"
    assert [a["text"] for a in later["merged_into"]["answers"]] == [f"Trả lời {x.answer}"]
    assert (await audit.get(f"/v1/recommendations/{x.id}", me)).status_code == 404
