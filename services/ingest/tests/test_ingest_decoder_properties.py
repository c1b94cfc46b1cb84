"""The inbound-topic decoder (`consumer.triage`): any record gives a submission or a reject."""

from __future__ import annotations

import json
from functools import cache

from aiokafka import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from phoihop_common.config import Reference, load_reference
from phoihop_common.consumer import Reject
from phoihop_ingest.consumer import triage
from phoihop_ingest.submissions import Pending
from phoihop_schemas.codec import encode
from phoihop_schemas.events import InboundSubmission

GOOD = InboundSubmission(
    kind="kien_nghi",
    channel="ubmttq_tong_hop",
    locality="xa-an-binh",
    text="Cử tri thôn 3 đề nghị sửa đường liên thôn",
    submitted_by="UBMTTQ_TINH",
)


@cache
def reference() -> Reference:
    """The deployment's reference data."""
    return load_reference()


def _record(value: bytes | None, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        topic="phoihop.inbound.submissions", partition=0, offset=1, timestamp=0,
        timestamp_type=0, key=b"k", value=value, checksum=None, serialized_key_size=1,
        serialized_value_size=len(value or b""), headers=headers,
    )  # fmt: skip


def test_a_valid_record_is_pending() -> None:
    rec = encode(GOOD, source="/agency/test")
    outcome = triage(_record(rec.value, rec.headers), reference=reference(), max_text_chars=20000)
    assert isinstance(outcome, Pending)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(st.none(), st.binary(max_size=2048)),
    extra=st.lists(st.tuples(st.text(max_size=16), st.binary(max_size=64)), max_size=4),
    keep_headers=st.booleans(),
)
def test_any_bytes_give_a_pending_or_a_reject(
    value: bytes | None, extra: list[tuple[str, bytes]], keep_headers: bool
) -> None:
    base = encode(GOOD, source="/agency/test").headers if keep_headers else []
    outcome = triage(_record(value, [*base, *extra]), reference=reference(), max_text_chars=20000)
    assert isinstance(outcome, Pending | Reject)
    if isinstance(outcome, Reject):
        assert outcome.reason


@settings(max_examples=300, deadline=None)
@given(
    patch=st.dictionaries(
        st.sampled_from(list(InboundSubmission.model_fields)), json_values, max_size=4
    )
)
def test_any_json_data_gives_a_pending_or_a_reject(patch: dict[str, object]) -> None:
    rec = encode(GOOD, source="/agency/test")
    data = json.loads(rec.value) | patch
    value = json.dumps(data).encode()  # ensure_ascii: lone surrogates travel as escapes
    outcome = triage(_record(value, rec.headers), reference=reference(), max_text_chars=20000)
    assert isinstance(outcome, Pending | Reject)
