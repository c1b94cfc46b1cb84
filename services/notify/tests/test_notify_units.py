"""Pure logic: the matcher, redaction, the retry policy, the SSRF guard, signatures, settings."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook

from phoihop_common.config import load_reference
from phoihop_common.pii import PiiCipher, PiiDecryptError, seal_reporter
from phoihop_notify.bodies import SUMMARIES, cloudevent_body, reveal
from phoihop_notify.channels import signature_header
from phoihop_notify.config import EVENT_TYPES
from phoihop_notify.exceptions import UrlNotAllowedError
from phoihop_notify.matching import Filter, Scope, matches, redact
from phoihop_notify.policy import Outcome, Result, next_step, parse_retry_after
from phoihop_notify.settings import DEFAULT_RETRY_SCHEDULE, NotifySettings
from phoihop_notify.ssrf import check_addresses, check_url
from phoihop_notify.store import new_secret
from phoihop_schemas.events import Decision, DuplicateSuggested, Reporter, SuggestedDuplicate
from phoihop_testkit.plugin import fixed_pii_cipher

NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)
REFERENCE = load_reference()
SCHEDULE = (0.0, 5.0, 300.0)


def flt(agency: str, scope: Scope = Scope.ADDRESSED, types: tuple[str, ...] = ()) -> Filter:
    return Filter(subscription_id="s", agency=agency, scope=scope, event_types=frozenset(types))


def test_matcher_by_addressee_scope_and_type():
    to = frozenset({"SO_XAY_DUNG"})
    assert matches(flt("SO_XAY_DUNG"), event_type="assigned", addressees=to)
    assert not matches(flt("SO_Y_TE"), event_type="assigned", addressees=to)
    assert matches(flt("TT_HDND", Scope.JURISDICTION), event_type="assigned", addressees=to)
    assert not matches(
        flt("TT_HDND", Scope.JURISDICTION, ("escalated",)), event_type="assigned", addressees=to
    )
    assert matches(flt("SO_XAY_DUNG", types=("assigned",)), event_type="assigned", addressees=to)


def test_duplicate_suggested_is_subscribable_and_goes_to_assignee_and_triage():
    event = DuplicateSuggested(
        recommendation_id="r-2",
        sequence=3,
        occurred_at=NOW,
        agency="SO_XAY_DUNG",
        candidates=(SuggestedDuplicate(recommendation_id="r-1", similarity=0.25),),
        recipients=("SO_XAY_DUNG", "TT_HDND"),
        decision=Decision(rule="duplicates.rank_candidates", version="1"),
    )
    assert "duplicate_suggested" in EVENT_TYPES
    assert "duplicate_suggested" in SUMMARIES
    to = event.addressees()
    types = ("duplicate_suggested",)
    for agency in ("SO_XAY_DUNG", "TT_HDND"):
        assert matches(flt(agency, types=types), event_type="duplicate_suggested", addressees=to)
    assert not matches(flt("SO_Y_TE"), event_type="duplicate_suggested", addressees=to)


def test_redaction_keeps_reporter_only_for_submitter():
    data = {"submitted_by": "UBMTTQ_TINH", "reporter": {"name": "Nguyễn Văn A"}, "text": "x"}
    assert redact(data, viewer="UBMTTQ_TINH", reference=REFERENCE)["reporter"] == {
        "name": "Nguyễn Văn A"
    }
    assert redact(data, viewer="CONG_AN_TINH", reference=REFERENCE)["reporter"] is None
    assert data["reporter"] == {"name": "Nguyễn Văn A"}  # input untouched


def test_redaction_follows_the_access_policy_by_kind():
    base = {"submitted_by": "SO_NN_MT", "reporter": {"name": "Nguyễn Văn A"}}
    ordinary, denunciation = {**base, "kind": "kien_nghi"}, {**base, "kind": "to_cao"}
    assert redact(ordinary, viewer="TT_HDND", reference=REFERENCE)["reporter"] is not None
    assert redact(denunciation, viewer="TT_HDND", reference=REFERENCE)["reporter"] is None
    assert redact(denunciation, viewer="SO_NN_MT", reference=REFERENCE)["reporter"] is not None
    assert redact(ordinary, viewer="SO_Y_TE", reference=REFERENCE)["reporter"] is None


def test_reporter_is_decrypted_only_in_the_body_of_a_recipient_allowed_to_see_it():
    cipher = fixed_pii_cipher()
    reporter = Reporter(name="Nguyễn Văn A", phone="0912345678")
    sealed = seal_reporter(reporter, recommendation_id="r1", cipher=cipher)
    data = {
        "recommendation_id": "r1",
        "submitted_by": "UBMTTQ_TINH",
        "reporter": sealed.model_dump(mode="json"),
    }
    attrs = {"id": "e1", "type": "t", "source": "/s", "specversion": "1.0"}

    def body(viewer: str, key: PiiCipher = cipher) -> dict[str, Any]:
        raw = cloudevent_body(
            attributes=attrs, data=data, viewer=viewer, cipher=key, reference=REFERENCE
        )
        return dict(json.loads(raw)["data"])

    assert body("UBMTTQ_TINH")["reporter"]["name"] == "Nguyễn Văn A"
    assert body("CONG_AN_TINH")["reporter"] is None
    # Rotation: a new current key, the old one kept, still opens what was stored before.
    rotated = PiiCipher(current=bytes(32), old=(cipher.current,))
    assert body("UBMTTQ_TINH", rotated)["reporter"]["phone"] == "0912345678"
    with pytest.raises(PiiDecryptError):
        body("UBMTTQ_TINH", PiiCipher(current=bytes(32)))
    with pytest.raises(PiiDecryptError):  # bound to its case
        reveal({**data, "recommendation_id": "r2"}, cipher=cipher)


@pytest.mark.parametrize(
    ("result", "attempt", "outcome", "delay"),
    [
        (Result(ok=True, status_code=200), 1, Outcome.DELIVERED, None),
        (Result(ok=False, status_code=500), 1, Outcome.RETRY_SCHEDULED, 5.0),
        (Result(ok=False, status_code=500), 2, Outcome.RETRY_SCHEDULED, 300.0),
        (Result(ok=False, status_code=500), 3, Outcome.DEAD_LETTERED, None),
        (Result(ok=False, status_code=429, retry_after=42.0), 1, Outcome.RETRY_SCHEDULED, 42.0),
        (Result(ok=False, status_code=503, retry_after=1e9), 1, Outcome.RETRY_SCHEDULED, 3600.0),
        (Result(ok=False, status_code=410, gone=True), 1, Outcome.DISABLED, None),
        (Result(ok=False, error="url_not_allowed", permanent=True), 1, Outcome.DEAD_LETTERED, None),
    ],
)
def test_retry_policy(result, attempt, outcome, delay):
    step = next_step(
        result=result, attempt_in_round=attempt, schedule=SCHEDULE, now=NOW, max_retry_after=3600
    )
    assert step.outcome is outcome
    if delay is not None:
        assert step.next_attempt_at == NOW + timedelta(seconds=delay)


def test_retry_after_forms():
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after("Mon, 01 Sep 2025 08:01:00 GMT", now=NOW) == 60.0
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


def test_ssrf_address_rules():
    loopback = ipaddress.ip_network("127.0.0.0/8")
    for bad in (
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "100.64.0.1",
        "::ffff:10.0.0.1",
    ):
        with pytest.raises(UrlNotAllowedError):
            check_addresses([ipaddress.ip_address(bad)], allowed=())
    check_addresses([ipaddress.ip_address("127.0.0.1")], allowed=(loopback,))
    check_addresses([ipaddress.ip_address("93.184.215.14")], allowed=())
    with pytest.raises(UrlNotAllowedError):  # one bad address among good ones is enough
        check_addresses(
            [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.1")], allowed=()
        )


async def test_check_url_resolves_names():
    with pytest.raises(UrlNotAllowedError):
        await check_url("http://localhost:8080/hook", allowed=())
    await check_url(
        "http://localhost:8080/hook",
        allowed=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    )
    with pytest.raises(UrlNotAllowedError):
        await check_url("file:///etc/passwd", allowed=())


def test_two_signatures_both_verify():
    old, new = new_secret(), new_secret()
    body = cloudevent_body(
        attributes={
            "id": "e1",
            "type": "vn.phoihop.recommendation.assigned.v1",
            "source": "/phoihop/routing",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "time": NOW.isoformat(),
            "sequence": "2",
        },
        data={"agency": "SO_XAY_DUNG", "text": "Đường liên thôn"},
        viewer="SO_XAY_DUNG",
        cipher=fixed_pii_cipher(),
        reference=REFERENCE,
    ).decode()
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(
            secrets=(new, old), msg_id="msg_1", at=now, body=body
        ),
    }
    assert Webhook(new).verify(body, headers)["data"]["text"] == "Đường liên thôn"
    assert Webhook(old).verify(body, headers)["sequence"] == "2"
    assert json.loads(body)["time"].startswith("2025-09-01T08:00:00")


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("PHOIHOP_NOTIFY_RETRY_SCHEDULE", "0, 1.5,3")
    monkeypatch.setenv("PHOIHOP_NOTIFY_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    monkeypatch.setenv("PHOIHOP_NOTIFY_DISABLE_AFTER", "60")
    monkeypatch.setenv("PHOIHOP_NOTIFY_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    s = NotifySettings()
    assert s.retry_schedule == (0.0, 1.5, 3.0)
    assert s.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert s.disable_after == timedelta(seconds=60)
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.port == 8082
    assert s.request_timeout == 15.0
    monkeypatch.delenv("PHOIHOP_NOTIFY_RETRY_SCHEDULE")
    assert NotifySettings().retry_schedule == DEFAULT_RETRY_SCHEDULE
    monkeypatch.setenv("PHOIHOP_NOTIFY_ALLOWED_NETWORKS", "not-a-network")
    with pytest.raises(ValueError, match="does not appear"):
        NotifySettings()
