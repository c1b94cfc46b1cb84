"""Text policy, bounded JSON parser and codec: any input in, a value or a typed rejection out."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from phoihop_schemas.codec import DecodeError, EncodeError, Envelope, decode, encode
from phoihop_schemas.events import (
    InboundSubmission,
    Received,
    Reporter,
    Response,
    Submission,
)
from phoihop_schemas.textpolicy import (
    JsonPolicyError,
    check_submitted_at,
    check_text,
    loads,
)
from phoihop_schemas.topics import RESPONSE_CE_TYPE, SUBMISSION_CE_TYPE, ce_type_for

BOUNDED = settings(max_examples=200, deadline=None)
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
VIETNAMESE = "Cử tri thôn 3 đề nghị sửa đường liên thôn, Đoàn ĐBQH tỉnh trả lời"
HOSTILE = ["\x00", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\ufffe", "\uffff"]
JSON_REASONS = {"invalid_json", "json_too_deep", "json_number_too_large"}

# Any code point, lone surrogates and controls included, biased towards the interesting ones.
any_char = st.one_of(
    st.integers(0, 0x10FFFF).map(chr),
    st.sampled_from([*HOSTILE, "\t", "\n", "\r", "e", "\u0302", "ê", "Đ", "\ufeff", "\U0001f600"]),
)
any_text = st.text(any_char, max_size=60)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


def _inbound_headers(ce_type: str = SUBMISSION_CE_TYPE) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"id-1"),
        ("ce_source", b"/agency"),
        ("ce_type", ce_type.encode()),
        ("content-type", b"application/json"),
    ]


def _submission(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "kien_nghi",
        "channel": "tiep_xuc_cu_tri",
        "locality": "xa-an-binh",
        "text": VIETNAMESE,
        "submitted_by": "UBMTTQ_TINH",
    }
    body.update(over)
    return body


def _decode_json(payload: Any, headers: list[tuple[str, bytes]] | None = None) -> Envelope:
    value = json.dumps(payload).encode()  # ASCII: lone surrogates travel as \\ud800 escapes
    return decode(value=value, headers=headers or _inbound_headers())


# --------------------------------------------------------------------------- check_text


@BOUNDED
@given(any_text)
@example("abc \ud800 def")
@example("a\x00b")
@example("\x1b[31m")
@example("tab\tnew\nline\r")
def test_check_text_returns_nfc_or_names_the_code_point(value: str) -> None:
    try:
        result = check_text(value)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("invalid_text: U+")
        code, _, index = message.removeprefix("invalid_text: U+").partition(" at ")
        assert value[int(index)] == chr(int(code, 16))
        return
    assert result == unicodedata.normalize("NFC", value)
    result.encode("utf-8")  # never a lone surrogate


@pytest.mark.parametrize("char", HOSTILE)
def test_check_text_rejects_each_hostile_character(char: str) -> None:
    with pytest.raises(ValueError, match=rf"^invalid_text: U\+{ord(char):04X} at 4$"):
        check_text(f"abc {char} def")


def test_check_text_names_the_lone_surrogate() -> None:
    with pytest.raises(ValueError, match=r"^invalid_text: U\+D800 at 4$"):
        check_text("abc \ud800 def")


def test_vietnamese_text_passes_unchanged_and_nfd_becomes_nfc() -> None:
    assert check_text(VIETNAMESE) == VIETNAMESE
    decomposed = unicodedata.normalize("NFD", VIETNAMESE)
    assert decomposed != VIETNAMESE
    assert check_text(decomposed) == VIETNAMESE
    assert check_text("tab\tnew\nline\r\n") == "tab\tnew\nline\r\n"


# --------------------------------------------------------------------------- loads


@BOUNDED
@given(st.binary(max_size=200) | any_text | json_values.map(json.dumps))
@example(b"[" * 50_000)
@example("1" * 5_000)
@example(b"\xff\xfe")
@example("NaN")
@example("[-Infinity]")
@example("1e999")
@example('"\\ud800"')
def test_loads_returns_a_value_or_a_policy_error(data: bytes | str) -> None:
    try:
        loads(data)
    except JsonPolicyError as exc:
        error = exc
    else:
        return
    assert error.reason in JSON_REASONS
    assert isinstance(error.detail, str)


@BOUNDED
@given(json_values)
def test_loads_agrees_with_json_on_what_it_accepts(value: Any) -> None:
    text = json.dumps(value)
    try:
        parsed = loads(text, max_depth=100, max_int_digits=1000)
    except JsonPolicyError as exc:  # only floats beyond the literal length limit
        reason = exc.reason
    else:
        assert parsed == json.loads(text)
        return
    assert reason == "json_number_too_large"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 50_000, "json_too_deep"),
        (b"[" * 50_000 + b"]" * 50_000, "json_too_deep"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, "json_too_deep"),
        (b"1" * 5_000, "json_number_too_large"),
        (b'{"n": -' + b"9" * 5_000 + b"}", "json_number_too_large"),
        (b"[1e999]", "json_number_too_large"),
        (b"NaN", "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b"\xc3\x28", "invalid_json"),
        (b"\xef\xbb\xbf{}", "invalid_json"),
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
    ],
)
def test_loads_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(JsonPolicyError) as info:
        loads(data)
    assert info.value.reason == reason


def test_loads_accepts_depth_and_digits_up_to_the_limits() -> None:
    assert loads(b"[" * 32 + b"]" * 32, max_depth=32) is not None
    assert loads("9" * 30) == int("9" * 30)
    assert loads('{"t": "' + VIETNAMESE + '", "x": [1.5, -2, true, null]}')["t"] == VIETNAMESE
    # brackets inside strings do not count as nesting
    assert loads(json.dumps({"t": "[" * 100})) == {"t": "[" * 100}


# --------------------------------------------------------------------------- submitted_at


@pytest.mark.parametrize(
    "value",
    [
        date(9999, 1, 1),
        date(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(1, 1, 1),
        datetime(1999, 12, 31, 16, 59, tzinfo=UTC),
        NOW + timedelta(minutes=11),
    ],
)
def test_submitted_at_out_of_bounds(value: date | datetime) -> None:
    with pytest.raises(ValueError, match=r"^invalid_submitted_at: "):
        check_submitted_at(value, now=NOW)


@pytest.mark.parametrize(
    "value",
    [None, date(2000, 1, 1), datetime(2000, 1, 1), NOW, NOW + timedelta(minutes=9), NOW.date()],
)
def test_submitted_at_in_bounds(value: date | datetime | None) -> None:
    assert check_submitted_at(value, now=NOW) == value


@pytest.mark.parametrize("value", ["9999-01-01", "0001-01-01", "9999-12-31T23:59:59Z"])
def test_inbound_models_bound_submitted_at_canonical_events_do_not(value: str) -> None:
    with pytest.raises(ValidationError, match="invalid_submitted_at"):
        Submission.model_validate(
            {k: v for k, v in _submission(submitted_at=value).items() if k != "submitted_by"}
        )
    with pytest.raises(DecodeError) as info:
        _decode_json(_submission(submitted_at=value))
    assert info.value.reason == "schema_violation"
    assert "invalid_submitted_at" in info.value.detail
    # an old event on a canonical topic still decodes on replay
    received = Received.model_validate(
        {
            "recommendation_id": "r1",
            "sequence": 1,
            "occurred_at": NOW,
            **_submission(submitted_at=value),
        }
    )
    record = encode(received, source="/phoihop/ingest")
    assert decode(value=record.value, headers=record.headers).data == received


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("char", HOSTILE)
def test_models_reject_hostile_text_in_every_free_text_field(char: str) -> None:
    bad = f"abc {char} def"
    for over in (
        {"text": bad},
        {"source_ref": bad},
        {"idempotency_key": bad},
        {"reporter": {"name": bad}},
        {"reporter": {"name": "A", "address": bad}},
    ):
        with pytest.raises(ValidationError, match="invalid_text"):
            InboundSubmission.model_validate(_submission(**over))
    for field in ("text", "reason", "response_id"):
        body = {
            "response_id": "x",
            "recommendation_id": "r1",
            "agency": "SO_XAY_DUNG",
            "action": "answer",
            "responded_at": NOW,
            field: bad,
        }
        with pytest.raises(ValidationError, match="invalid_text"):
            Response.model_validate(body)


def test_models_keep_vietnamese_and_normalise_nfd() -> None:
    nfd = unicodedata.normalize("NFD", VIETNAMESE)
    sub = InboundSubmission.model_validate(_submission(text=nfd, reporter={"name": "Nguyễn Văn A"}))
    assert sub.text == VIETNAMESE
    assert sub.reporter == Reporter(name="Nguyễn Văn A")


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 50_000, "json_too_deep"),
        (b'{"a": ' + b"1" * 5_000 + b"}", "json_number_too_large"),
        (b"\xff{}", "bad_json"),
        (b'{"a": NaN}', "bad_json"),
        (json.dumps(_submission(text="abc \ud800 def")).encode(), "schema_violation"),
        (json.dumps(_submission(text="a\x00b")).encode(), "schema_violation"),
        (json.dumps(_submission(text="\x1b[2J")).encode(), "schema_violation"),
        (b"[1, 2]", "bad_data"),
    ],
)
def test_decode_maps_policy_rejections(value: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(value=value, headers=_inbound_headers())
    assert info.value.reason == reason
    info.value.detail.encode("utf-8")  # a detail can always go into a dead-letter header


@pytest.mark.parametrize(
    "header",
    [
        ("ce_source", b"\xff\xfe"),
        ("ce_id", b"a\x00b"),
        ("ce_subject", b"\x1b[31m"),
        ("ce_time", b"99999-01-01T00:00:00Z"),
        ("ce_time", b"not a time"),
        ("ce_specversion", b"0.3"),
        ("content-type", b"text/plain"),
    ],
)
def test_decode_refuses_hostile_headers(header: tuple[str, bytes]) -> None:
    headers = [h for h in _inbound_headers() if h[0] != header[0]] + [header]
    with pytest.raises(DecodeError) as info:
        _decode_json(_submission(), headers)
    assert info.value.reason in ("bad_envelope", "bad_data")


def test_decode_refuses_a_key_that_is_not_utf8() -> None:
    with pytest.raises(DecodeError):
        decode(value=json.dumps(_submission()).encode(), headers=_inbound_headers(), key=b"\xff")


def _headers_strategy() -> st.SearchStrategy[list[tuple[str, bytes]]]:
    names = st.sampled_from(
        ["ce_id", "ce_source", "ce_time", "ce_subject", "ce_x", "content-type", "ce_specversion"]
    )
    values = st.binary(max_size=30) | any_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
    base = st.sampled_from(
        [SUBMISSION_CE_TYPE, RESPONSE_CE_TYPE, ce_type_for("received"), "other"]
    ).map(_inbound_headers)
    return st.tuples(base, st.lists(st.tuples(names, values), max_size=3)).map(
        lambda t: [h for h in t[0] if h[0] not in {n for n, _ in t[1]}] + t[1]
    )


def _assert_decodes_or_rejects(
    value: bytes, headers: list[tuple[str, bytes]], key: bytes | None = None
) -> None:
    try:
        envelope = decode(value=value, headers=headers, key=key)
    except DecodeError as exc:
        exc.detail.encode("utf-8")
        return
    # what decode accepts can always go back on the wire
    encode(envelope.data, source=envelope.source, event_id=envelope.id)


@BOUNDED
@given(st.binary(max_size=300), _headers_strategy(), st.none() | st.binary(max_size=10))
@example(b"[" * 50_000, _inbound_headers(), None)
@example(b"1" * 5_000, _inbound_headers(), None)
def test_decode_any_bytes_gives_an_envelope_or_a_decode_error(
    value: bytes, headers: list[tuple[str, bytes]], key: bytes | None
) -> None:
    _assert_decodes_or_rejects(value, headers, key)


@BOUNDED
@given(
    st.dictionaries(
        st.sampled_from(["text", "source_ref", "idempotency_key", "reporter", "submitted_at"]),
        json_values,
        max_size=3,
    ),
    _headers_strategy(),
)
def test_decode_submission_shaped_data_gives_an_envelope_or_a_decode_error(
    over: dict[str, Any], headers: list[tuple[str, bytes]]
) -> None:
    _assert_decodes_or_rejects(json.dumps(_submission(**over)).encode(), headers)


@BOUNDED
@given(any_text.filter(str.strip))
def test_decode_any_text_in_a_submission_is_accepted_in_nfc_or_rejected(text: str) -> None:
    try:
        envelope = _decode_json(_submission(text=text))
    except DecodeError as exc:
        reason = exc.reason
    else:
        assert isinstance(envelope.data, InboundSubmission)
        assert envelope.data.text == unicodedata.normalize("NFC", text).strip()
        return
    assert reason == "schema_violation"


def test_encode_refuses_text_that_is_not_utf8() -> None:
    # only a model built without validation can hold a lone surrogate
    sub = InboundSubmission.model_construct(
        **InboundSubmission.model_validate(_submission()).__dict__ | {"text": "abc \ud800 def"}
    )
    with pytest.raises(EncodeError, match="UTF-8"):
        encode(sub, source="/agency")
    ok = InboundSubmission.model_validate(_submission(text="emoji \U0001f600 ok"))
    assert decode(**_record(encode(ok, source="/agency"))).data == ok


def _record(record: Any) -> dict[str, Any]:
    return {"value": record.value, "headers": record.headers, "key": record.key}
