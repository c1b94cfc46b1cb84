"""The canonical bytes behind content digests and chain hashes, built without re-serialising.

A digest that changed between versions would turn every redelivery of an event stored
before the upgrade into a conflict, and a changed record hash would break the chain: the
shortcuts must give exactly the bytes of the plain definitions.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from phoihop_audit import merkle
from phoihop_audit.trail import canonical_json, content_json, record_bytes, record_hashes

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # lone surrogates are refused upstream
    max_size=12,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(event_id=_TEXT, event_type=_TEXT, data=st.dictionaries(_TEXT, _JSON, max_size=6))
def test_content_json_is_the_canonical_json_of_the_event(
    event_id: str, event_type: str, data: dict[str, Any]
) -> None:
    direct = canonical_json({"id": event_id, "type": event_type, "data": data})
    built = content_json(event_id=event_id, event_type=event_type, data_json=canonical_json(data))
    assert built == direct


def test_content_json_keeps_vietnamese_text_as_is() -> None:
    data = {"text": "Đường liên xã xuống cấp", "locality": "26734"}
    built = content_json(event_id="e-1", event_type="received", data_json=canonical_json(data))
    assert built == (
        '{"data":{"locality":"26734","text":"Đường liên xã xuống cấp"},'
        '"id":"e-1","type":"received"}'
    )


def test_record_hashes_are_the_chain_and_leaf_hashes() -> None:
    row = {
        "position": 7,
        "event_id": "e-7",
        "type": "assigned",
        "recommendation_id": "r-1",
        "sequence": 2,
        "source": "/phoihop/routing",
        "event_time": "2026-05-04T08:00:00+00:00",
        "data": canonical_json({"agency": "SO_GTVT", "note": "Sở Giao thông"}),
        "reporter_enc": None,
        "content_digest": "d" * 64,
        "stored_at": "2026-05-04T08:00:01+00:00",
        "prev_hash": "0" * 64,
    }
    body = record_bytes(row)
    assert record_hashes(row) == (
        hashlib.sha256(body).hexdigest(),
        merkle.leaf_hash(body).hex(),
    )
