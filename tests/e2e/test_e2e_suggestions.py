"""End to end: a near duplicate below the auto-merge bar is assigned, then suggested.

Two submissions about the same commune's roads that `duplicates.rank_candidates` ranks as
"suggest" (similarity between the suggestion bar and the merge bar): the second is not
merged; routing emits `duplicate_suggested` after its `assigned`, notify delivers it to the
assignee's and triage's addressed subscriptions, and audit's status lists the first case.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phoihop_embedded.stack import Stack
from phoihop_testkit.webhook_receiver import WebhookReceiver
from tests.e2e.test_e2e_bus import _is, _poll, _secret, _start, _status, _submit, _subscribe
from tests.e2e.test_e2e_bus import _trail as trail_of
from tests.e2e.test_e2e_bus import _verified as verified

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

COMMUNE = "UBND_XA_XA_AN_BINH"
FIRST = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp nghiêm trọng"
# ranked "suggest" against FIRST (about 0.23: above the 0.15 suggestion bar, below 0.3)
NEARBY = "Đề nghị bố trí kinh phí bê tông hóa các tuyến ngõ xóm còn lại là đường đất"


def test_near_duplicate_is_suggested_to_assignee_and_triage_and_shown_in_status(
    stack_factory: Callable[..., Stack], config_dir: Path, receiver: WebhookReceiver
) -> None:
    secret = _secret()
    types = ["duplicate_suggested"]
    _subscribe(
        config_dir,
        [
            {
                "agency": COMMUNE,
                "url": receiver.url("/commune"),
                "secret": secret,
                "event_types": types,
            },
            {
                "agency": "TT_HDND",
                "url": receiver.url("/triage"),
                "secret": secret,
                "event_types": types,
            },
        ],
    )
    stack = _start(stack_factory, config_dir)
    first = _submit(stack, FIRST)
    _poll(lambda: (s := _status(stack, first)) and s["status"] == "assigned", what="first")
    second = _submit(stack, NEARBY)

    for path in ("/commune", "/triage"):
        hook = receiver.wait_for(
            lambda d, p=path: d.path == p and _is("duplicate_suggested", second)(d)
        )
        data = verified(hook, secret)["data"]
        assert data["sequence"] == 3
        assert data["agency"] == COMMUNE
        assert [c["recommendation_id"] for c in data["candidates"]] == [first]
        assert 0.15 <= data["candidates"][0]["similarity"] < 0.3
        assert data["candidates"][0]["evidence"]

    status = _poll(
        lambda: (s := _status(stack, second)) and s["suggested_duplicates"] and s,
        what="suggested_duplicates",
    )
    assert status["status"] == "assigned"
    assert status["duplicate_of"] is None
    assert status["suggested_duplicates"] == [first]
    seen_by_assignee = _status(stack, second, COMMUNE)
    assert seen_by_assignee is not None
    assert seen_by_assignee["suggested_duplicates"] == [first]
    events = _poll(lambda: (t := trail_of(stack, second)) and len(t) >= 3 and t, what="trail")
    assert [e["type"] for e in events] == ["received", "assigned", "duplicate_suggested"]
