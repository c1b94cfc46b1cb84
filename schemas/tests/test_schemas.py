"""Contracts: codec round trips, decode errors with reasons, generated schemas up to date."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from phoihop_schemas import export
from phoihop_schemas.codec import (
    MAX_MESSAGE_BYTES,
    DecodeError,
    decode,
    encode,
    lifecycle_event_id,
)
from phoihop_schemas.events import (
    Assigned,
    Channel,
    Decision,
    InboundSubmission,
    Kind,
    Level,
    Received,
    Reporter,
    Submission,
)
from phoihop_schemas.topics import ALL_TOPICS, CANONICAL, CO_PARTITIONED

GENERATED = Path(__file__).resolve().parents[1] / "generated"
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def _received(**over: object) -> Received:
    fields: dict[str, object] = {
        "recommendation_id": "3f1e0f9c-1111-4a4a-9999-000000000001",
        "sequence": 1,
        "occurred_at": NOW,
        "kind": Kind.KIEN_NGHI,
        "channel": Channel.TIEP_XUC_CU_TRI,
        "locality": "xa-an-binh",
        "text": "Cử tri thôn 3 đề nghị sửa đường liên thôn",
        "submitted_by": "UBMTTQ_TINH",
    }
    fields.update(over)
    return Received.model_validate(fields)


def test_round_trip_keeps_model_key_and_binary_headers() -> None:
    event = _received()
    record = encode(event, source="/phoihop/ingest")
    headers = dict(record.headers)
    assert record.key == event.recommendation_id.encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"vn.phoihop.recommendation.received.v1"
    assert headers["ce_subject"] == event.recommendation_id.encode()
    assert headers["content-type"] == b"application/json"
    decoded = decode(value=record.value, headers=record.headers, key=record.key)
    assert decoded.data == event
    assert decoded.event_name == "received"
    assert decoded.id == lifecycle_event_id(event.recommendation_id, 1)


def test_event_ids_are_deterministic_per_recommendation_and_sequence() -> None:
    a = encode(_received(), source="/x")
    b = encode(_received(text="khác"), source="/y")
    assert dict(a.headers)["ce_id"] == dict(b.headers)["ce_id"]
    assert lifecycle_event_id("r", 1) != lifecycle_event_id("r", 2)


def test_text_is_nfc_normalised() -> None:
    decomposed = "Đường lie\u0302n tho\u0302n"
    sub = Submission(
        kind=Kind.PHAN_ANH, channel=Channel.CONG_THONG_TIN, locality="xa-tan-phu", text=decomposed
    )
    assert sub.text == "Đường liên thôn"


def test_models_are_frozen() -> None:
    event = _received()
    with pytest.raises(ValueError, match="frozen"):
        event.sequence = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{}", [("x", b"y")], "not_cloudevent"),
        (
            b"not json",
            [("ce_type", b"vn.phoihop.recommendation.received.v1"), ("ce_specversion", b"1.0")],
            "bad_json",
        ),
        (
            b"{}",
            [
                ("ce_type", b"com.example.unknown"),
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/t"),
                ("content-type", b"application/json"),
            ],
            "unknown_type",
        ),
        (
            b'{"recommendation_id": "r"}',
            [
                ("ce_type", b"vn.phoihop.recommendation.received.v1"),
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/t"),
                ("content-type", b"application/json"),
            ],
            "schema_violation",
        ),
        (b"x" * (MAX_MESSAGE_BYTES + 1), [], "oversized"),
        (None, [], "empty_value"),
    ],
)
def test_decode_errors_carry_machine_readable_reasons(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(value=value, headers=headers)
    assert info.value.reason == reason


def test_inbound_submission_round_trip_has_no_sequence_header() -> None:
    sub = InboundSubmission(
        kind=Kind.TO_CAO,
        channel=Channel.DON_THU,
        locality="xa-na-hang",
        text="Tố cáo cán bộ địa chính",
        reporter=Reporter(name="Nguyễn Văn A", phone="0912345678"),
        submitted_by="THANH_TRA_TINH",
    )
    record = encode(sub, source="/agency/thanh-tra")
    assert "ce_sequence" not in dict(record.headers)
    assert decode(value=record.value, headers=record.headers).data == sub


def test_generated_files_are_up_to_date() -> None:
    stale = [
        rel
        for rel, content in export.render().items()
        if not (GENERATED / rel).is_file() or (GENERATED / rel).read_text("utf-8") != content
    ]
    assert not stale, f"run `make schemas`: stale {stale}"


def test_json_schema_accepts_what_the_codec_sends_and_rejects_bad_data() -> None:
    schema = json.loads((GENERATED / "jsonschema" / "assigned.json").read_text("utf-8"))
    event = Assigned(
        recommendation_id="r1",
        sequence=2,
        occurred_at=NOW,
        agency="SO_XAY_DUNG",
        category="GIAO_THONG",
        level=Level.TINH,
        kind=Kind.KIEN_NGHI,
        locality="xa-an-binh",
        deadline=NOW,
        decision=Decision(rule="r", version="1", evidence=("cầu",), confidence=0.9),
    )
    jsonschema.validate(json.loads(encode(event, source="/t").value), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"recommendation_id": "r1", "sequence": 0}, schema)


def test_asyncapi_names_every_canonical_topic() -> None:
    doc = json.loads((GENERATED / "asyncapi.json").read_text("utf-8"))
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {t.name for t in CANONICAL.values()} <= addresses


def test_registry_names_are_unique_and_co_partitioned_topics_keyed_by_recommendation() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(t.keyed_by_recommendation for t in CO_PARTITIONED)
