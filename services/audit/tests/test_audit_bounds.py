"""Query parameters out of bounds answer 422 `{"error", "detail"}`, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from phoihop_audit import queries, reports
from phoihop_audit.exceptions import BadRequestError

SUPERVISOR = {"X-API-Key": "dev-TT_HDND"}
TWENTY_DIGITS = "9" * 20

OUT_OF_BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/recommendations", {"page": TWENTY_DIGITS}),
    ("/v1/recommendations", {"page": "10001"}),
    ("/v1/recommendations", {"page_size": "201"}),
    ("/v1/recommendations", {"to": "9999-12-31"}),
    ("/v1/recommendations", {"from": "0001-01-01"}),
    ("/v1/recommendations", {"from": "1999-12-31"}),
    ("/v1/recommendations", {"to": "2101-01-01"}),
    ("/v1/recommendations", {"agency": "SO\x00XD"}),
    ("/v1/recommendations", {"status": "x" * 101}),
    ("/v1/reports", {"month": "9999-12"}),
    ("/v1/reports", {"month": "0001-01"}),
    ("/v1/reports", {"quarter": "9999-Q4"}),
    ("/v1/reports", {"from": "0001-01-01", "to": "2026-01-01"}),
    ("/v1/reports", {"from": "2026-01-01", "to": "9999-12-31"}),
    ("/v1/audit/proof/consistency", {"first": TWENTY_DIGITS, "second": TWENTY_DIGITS}),
    ("/v1/audit/proof/consistency", {"first": "1", "second": str(2**31 + 1)}),
    ("/v1/audit/proof/inclusion", {"event_id": "e", "tree_size": TWENTY_DIGITS}),
    ("/v1/audit/proof/inclusion", {"event_id": "e\x00", "tree_size": "1"}),
    ("/v1/audit/checkpoints", {"limit": TWENTY_DIGITS}),
]


@pytest.mark.parametrize(("path", "params"), OUT_OF_BOUNDS)
async def test_out_of_bounds_is_422(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> None:
    resp = await client.get(path, params=params, headers=SUPERVISOR)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert body["detail"][0]["field"].startswith("query.")


async def test_bounds_themselves_are_accepted(client: httpx.AsyncClient) -> None:
    params = {"from": "2000-01-01", "to": "2100-12-31", "page": "10000", "page_size": "200"}
    resp = await client.get("/v1/recommendations", params=params, headers=SUPERVISOR)
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []
    for period in (
        {"month": "2100-12"},
        {"quarter": "2000-Q1"},
        {"from": "2000-01-01", "to": "2100-12-31"},
    ):
        resp = await client.get("/v1/reports", params=period, headers=SUPERVISOR)
        assert resp.status_code == 200, (period, resp.text)
    proof = await client.get(
        "/v1/audit/proof/consistency", params={"first": 2**31, "second": 2**31}
    )
    assert proof.status_code == 404
    assert proof.json()["error"] == "not_found"


async def test_unknown_route_and_method_keep_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here", headers=SUPERVISOR)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    method = await client.delete("/v1/recommendations", headers=SUPERVISOR)
    assert method.status_code == 405
    assert method.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "call",
    [
        lambda: queries.period_bounds(date(1, 1, 1), None),
        lambda: queries.period_bounds(None, date.max),
        lambda: reports.parse_period(date_from=None, date_to=None, month="9999-12", quarter=None),
        lambda: reports.parse_period(date_from=None, date_to=None, month=None, quarter="0001-Q1"),
    ],
)
def test_date_arithmetic_is_guarded_below_http(call: Callable[[], object]) -> None:
    with pytest.raises(BadRequestError) as caught:
        call()
    assert caught.value.reason == "bad_period"
