"""End to end: people correct duplicate decisions through the real HTTP API.

One bus (broker, ingest, routing, notify, audit as processes):
- `not_duplicate` dismisses a suggestion: gone from `suggested_duplicates`, in the trail;
- the pair is then merged by hand with `merge_into` (the case becomes `merged`);
- the merge is undone with `unmerge`: the case is its own again, assigned again, and its
  submitter's webhook gets `unmerged`;
- a denunciation (`to_cao`) is never merged with another kind, neither by routing (same
  text) nor by hand (422 `kind_mismatch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.bus import key
from phoihop_embedded.stack import Stack
from phoihop_routing.evaluate import main as evaluate_main
from phoihop_testkit.webhook_receiver import WebhookReceiver
from tests.e2e.test_e2e_bus import _is, _poll, _secret, _start, _status, _submit, _subscribe
from tests.e2e.test_e2e_bus import _trail as trail_of
from tests.e2e.test_e2e_bus import _verified as verified
from tests.e2e.test_e2e_suggestions import FIRST, NEARBY

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

COMMUNE = "UBND_XA_XA_AN_BINH"
SUBMITTER = "UBMTTQ_TINH"


def _correct(stack: Stack, rec_id: str, segment: str, body: dict[str, Any], agency: str) -> Any:
    return httpx.post(
        f"{stack.url('ingest')}/v1/recommendations/{rec_id}/{segment}",
        json=body,
        headers=key(agency),
        timeout=30,
    )


def _types(stack: Stack, rec_id: str, count: int) -> list[dict[str, Any]]:
    return list(
        _poll(lambda: (t := trail_of(stack, rec_id)) and len(t) >= count and t, what="trail")
    )


def test_merge_into_unmerge_and_not_duplicate_through_the_api(
    stack_factory: Callable[..., Stack],
    config_dir: Path,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    secret = _secret()
    _subscribe(
        config_dir,
        [
            {
                "agency": SUBMITTER,
                "url": receiver.url("/submitter"),
                "secret": secret,
                "event_types": ["unmerged"],
            }
        ],
    )
    stack = _start(stack_factory, config_dir)
    first = _submit(stack, FIRST)
    _poll(lambda: (s := _status(stack, first)) and s["status"] == "assigned", what="first")
    second = _submit(stack, NEARBY)
    _poll(
        lambda: (s := _status(stack, second)) and s["suggested_duplicates"] == [first],
        what="suggestion",
    )

    # the assignee says it does not repeat the first: the suggestion is gone, with a reason
    resp = _correct(stack, second, "not_duplicate", {"target": first}, COMMUNE)
    assert resp.status_code == 202, resp.text
    events = _types(stack, second, 4)
    assert [e["type"] for e in events][2:] == ["duplicate_suggested", "duplicate_dismissed"]
    assert events[3]["data"]["candidate"] == first
    _poll(
        lambda: (s := _status(stack, second)) and s["suggested_duplicates"] == [],
        what="dismissed",
    )

    # then thinks better of it and merges it by hand after all
    resp = _correct(stack, second, "merge_into", {"target": first}, COMMUNE)
    assert resp.status_code == 202, resp.text
    merged = _poll(
        lambda: (s := _status(stack, second)) and s["status"] == "merged" and s, what="merged"
    )
    assert merged["duplicate_of"] == first
    events = _types(stack, second, 5)
    assert events[4]["type"] == "merged"
    assert events[4]["data"]["merged_by"] == COMMUNE
    assert events[4]["data"]["decision"]["rule"] == "manual:merge_into"

    # a supervisor body undoes it: the case is its own again and its submitter is told
    resp = _correct(stack, second, "unmerge", {"reason": "Khác nội dung"}, "TT_HDND")
    assert resp.status_code == 202, resp.text
    events = _types(stack, second, 7)
    assert [e["type"] for e in events][4:] == ["merged", "unmerged", "assigned"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert events[6]["data"]["decision"]["rule"] == "unmerge:reroute"
    status = _poll(
        lambda: (s := _status(stack, second)) and s["status"] == "assigned" and s, what="split"
    )
    assert status["duplicate_of"] is None
    assert status["agency"] == COMMUNE
    hook = receiver.wait_for(lambda d: d.path == "/submitter" and _is("unmerged", second)(d))
    data = verified(hook, secret)["data"]
    assert data["duplicate_of"] == first
    assert data["recipients"] == [SUBMITTER]
    assert data["reason"] == "Khác nội dung"
    # a case that is not merged cannot be unmerged
    resp = _correct(stack, second, "unmerge", {"reason": "x"}, "TT_HDND")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"] == "not_merged"

    # the decided pair is exported for `make eval --pairs`, labelled by the latest decision
    today = datetime.now(UTC).date()
    export = httpx.get(
        f"{stack.url('audit')}/v1/reports/labelled-pairs",
        params={
            "from": str(today - timedelta(days=1)),
            "to": str(today + timedelta(days=1)),
            "format": "jsonl",
        },
        headers=key("TT_HDND"),
        timeout=30,
    )
    assert export.status_code == 200, export.text
    (line,) = [json.loads(x) for x in export.text.splitlines() if x.strip()]
    assert {line["a"], line["b"]} == {first, second}
    assert line["label"] == "not_duplicate"
    assert line["text_a"]
    assert line["text_b"]
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(export.text, encoding="utf-8")
    assert evaluate_main(["--pairs", str(pairs_file), "--json"]) == 0
    assert httpx.get(
        f"{stack.url('audit')}/v1/reports/labelled-pairs", headers=key(COMMUNE), timeout=30
    ).status_code in (403, 404)

    # a denunciation with the very same words stays apart, and cannot be merged by hand
    body = {
        "kind": "to_cao",
        "channel": "don_thu",
        "locality": "xa-an-binh",
        "text": FIRST,
        "reporter": {"name": "Nguyễn Văn A"},
    }
    resp = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations", json=body, headers=key(SUBMITTER), timeout=30
    )
    assert resp.status_code == 202, resp.text
    denunciation = str(resp.json()["id"])
    seen = _poll(
        lambda: (s := _status(stack, denunciation)) and s["status"] != "received" and s,
        what="denunciation routed",
    )
    assert seen["status"] != "merged"
    assert seen["duplicate_of"] is None
    resp = _correct(stack, denunciation, "merge_into", {"target": first}, "TT_HDND")
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "kind_mismatch"
