"""dead_letter_message: whatever the record, the dead letter can be published."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from phoihop_common.dlq import MAX_HEADER_BYTES, MAX_KEY_BYTES, DeadLetter, dead_letter_message
from phoihop_schemas.codec import MAX_MESSAGE_BYTES


def _message(**overrides: object) -> DeadLetter:
    kwargs: dict[str, object] = {
        "reason": "bad_json",
        "detail": "x",
        "topic": "phoihop.inbound.submissions",
        "partition": 3,
        "offset": 41,
        "service": "ingest",
        "key": b"k",
        "value": b"{}",
        "headers": [("ce_type", b"t")],
    }
    kwargs.update(overrides)
    return dead_letter_message(**kwargs)


def test_small_record_is_kept_as_it_was_with_coordinates() -> None:
    msg = _message()
    headers = dict(msg.headers)
    assert msg.value == b"{}"
    assert headers["ce_type"] == b"t"
    assert headers["dlq_reason"] == b"bad_json"
    assert headers["dlq_partition"] == b"3"
    assert headers["dlq_offset"] == b"41"
    assert "dlq_value_truncated" not in headers


def test_oversized_value_key_and_headers_are_bounded() -> None:
    msg = _message(
        value=b"v" * (MAX_MESSAGE_BYTES + 1),
        key=b"k" * (MAX_KEY_BYTES * 3),
        headers=[(f"h{i}", b"x" * 1024) for i in range(40)],
        detail="lone \ud800 surrogate " * 200,
    )
    headers = dict(msg.headers)
    assert len(msg.value) < 4096
    assert headers["dlq_value_truncated"] == b"1"
    assert headers["dlq_headers_dropped"] == b"40"
    assert len(msg.key) == MAX_KEY_BYTES
    assert len(headers["dlq_detail"]) <= 4 * 1000
    assert b"\\ud800" in headers["dlq_detail"]


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(st.none(), st.binary(max_size=4096)),
    key=st.one_of(st.none(), st.binary(max_size=2048)),
    detail=st.text(max_size=2000),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=2048)), max_size=12),
)
def test_any_record_gives_a_bounded_publishable_dead_letter(
    value: bytes | None, key: bytes | None, detail: str, headers: list[tuple[str, bytes]]
) -> None:
    msg = _message(value=value, key=key, detail=detail, headers=headers)
    total = sum(len(n.encode("utf-8", "backslashreplace")) + len(v) for n, v in msg.headers)
    assert total <= MAX_HEADER_BYTES + 8 * 1024
    assert len(msg.value) <= MAX_MESSAGE_BYTES
