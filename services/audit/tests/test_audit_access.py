"""Who sees what: scope by agency, reporter identity, search with and without diacritics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from phoihop_schemas.events import Reporter

REPORTER = Reporter(name="Trần Thị Bình", phone="0987 654 321", address="Tổ 5, Phường Bắc Sơn")


async def test_scope_and_reporter_clearance(rt, store, ev, new_id, client, as_agency) -> None:
    open_case, denunciation, moved, dup = (new_id() for _ in range(4))
    store([ev.received(open_case, reporter=REPORTER), ev.assigned(open_case)])
    store(
        [
            ev.received(denunciation, kind="to_cao", submitted_by="DOAN_DBQH", reporter=REPORTER),
            ev.assigned(denunciation, agency="THANH_TRA_TINH", kind="to_cao", category="TO_CAO"),
        ]
    )
    store([ev.received(moved), ev.assigned(moved, agency="SO_Y_TE"), ev.assigned(moved, seq=3)])
    store(
        [
            ev.received(dup, submitted_by="SO_NN_MT"),
            ev.merged(dup, into=open_case, submitted_by="SO_NN_MT"),
        ]
    )

    def get(rec, agency):
        return client.get(f"/v1/recommendations/{rec}", headers=as_agency(agency))

    no_key = await client.get(f"/v1/recommendations/{open_case}")
    assert (no_key.status_code, no_key.json()["error"]) == (401, "missing_api_key")
    bad_key = await client.get(f"/v1/recommendations/{open_case}", headers={"X-API-Key": "nope"})
    assert bad_key.status_code == 401
    assert bad_key.json()["error"] == "invalid_api_key"
    # An uninvolved resolver sees nothing; the assignee sees its case and who reported it.
    assert (await get(open_case, "SO_Y_TE")).status_code == 404
    assert (await get(denunciation, "SO_XAY_DUNG")).status_code == 404
    mine = await get(open_case, "SO_XAY_DUNG")
    assert mine.json()["reporter"]["name"] == "Trần Thị Bình"
    assert mine.headers["cache-control"] == "no-store"
    # Merged into it: counted; named only to those who may read the merged recommendation.
    assert mine.json()["duplicate_count"] == 1
    assert mine.json()["duplicates"] == []
    assert (await get(open_case, "TT_HDND")).json()["duplicates"] == [dup]
    # Supervisors and the submitting agency are cleared for an ordinary reporter's identity.
    assert (await get(open_case, "TT_HDND")).json()["reporter"]["name"] == "Trần Thị Bình"
    assert (await get(open_case, "UBMTTQ_TINH")).json()["reporter"]["phone"] == "0987 654 321"
    # A denunciation: only the body settling it and the submitting agency, no supervisor.
    to_cao = (await get(denunciation, "THANH_TRA_TINH")).json()
    assert to_cao["status"] == "assigned"
    assert to_cao["reporter"]["name"] == "Trần Thị Bình"
    for supervisor in ("TT_HDND", "UBMTTQ_TINH", "UBND_TINH"):
        seen = await get(denunciation, supervisor)
        assert seen.json()["reporter"] is None
        assert seen.json()["reporter_withheld"] is True
        assert "cache-control" not in seen.headers
    trail = (
        await client.get(f"/v1/recommendations/{denunciation}/trail", headers=as_agency("TT_HDND"))
    ).json()
    assert trail["events"][0]["data"]["reporter"] is None
    assert trail["events"][0]["reporter_withheld"] is True
    assert (await get(denunciation, "DOAN_DBQH")).json()["reporter"]["name"] == "Trần Thị Bình"
    # Each response that carried the reporter is in the trail: who, where, when.
    shown = [d["data"]["agency"] for d in trail["disclosures"]]
    assert shown == ["THANH_TRA_TINH"]
    assert trail["disclosures"][0]["data"]["endpoint"] == "GET /v1/recommendations/{rec_id}"
    # A past assignee still sees the case it handed on; a merge opens nothing to the source.
    past = (await get(moved, "SO_Y_TE")).json()
    assert past["agency"] == "SO_XAY_DUNG"
    assert [a["agency"] for a in past["assignments"]] == ["SO_Y_TE", "SO_XAY_DUNG"]
    assert (await get(open_case, "SO_NN_MT")).status_code == 404
    own = (await get(dup, "SO_NN_MT")).json()
    assert own["duplicate_of"] == open_case
    assert own["merged_into"]["agency"] == "SO_XAY_DUNG"
    # At rest the identity is ciphertext.
    with rt.engine.connect() as conn:
        raw = " ".join(
            r
            for (r,) in conn.execute(
                text("SELECT data || coalesce(reporter_enc, '') FROM audit_events")
            )
        )
    assert "Trần Thị Bình" not in raw
    assert "0987" not in raw


async def test_search_with_and_without_diacritics_filters_and_scope(
    store, ev, new_id, client, as_agency
) -> None:
    road, water, power, late = (new_id() for _ in range(4))
    now = datetime.now(UTC)
    soon = now + timedelta(days=20)
    store(
        [
            ev.received(road, text="Đề nghị sửa chữa đường liên thôn bị xuống cấp"),
            ev.assigned(road, deadline=soon),
        ]
    )
    store(
        [
            ev.received(
                water, text="Ô nhiễm nước thải từ khu chăn nuôi tập trung", locality="xa-tan-phu"
            ),
            ev.assigned(
                water,
                agency="SO_NN_MT",
                category="MOI_TRUONG",
                locality="xa-tan-phu",
                deadline=soon,
            ),
        ]
    )
    store(
        [
            ev.received(
                power,
                text="Đường dây điện hạ thế chập chờn",
                kind="phan_anh",
                at=datetime(2026, 4, 20, tzinfo=UTC),
            ),
            ev.assigned(
                power,
                agency="CONG_TY_DIEN_LUC",
                category="DIEN",
                kind="phan_anh",
                at=datetime(2026, 4, 20, 2, tzinfo=UTC),
                deadline=soon,
            ),
        ]
    )
    store(
        [
            ev.received(late, text="Trường học thiếu phòng học"),
            ev.assigned(
                late,
                agency="SO_GD_DT",
                category="GIAO_DUC",
                at=now - timedelta(days=40),
                deadline=now - timedelta(days=10),
            ),
        ]
    )
    sup = as_agency("TT_HDND")

    async def ids(headers=sup, **params):
        resp = await client.get("/v1/recommendations", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        return {i["id"] for i in resp.json()["items"]}

    assert await ids(q="đường") == {road, power}
    assert await ids(q="duong") == {road, power}
    assert await ids(q="DUONG LIEN THON") == {road}
    assert await ids(q="ô nhiễm") == await ids(q="o nhiem") == {water}
    assert await ids(q="nuoc thai") == {water}
    assert await ids(agency="SO_NN_MT") == {water}
    assert await ids(locality="xa-tan-phu") == {water}
    assert await ids(category="DIEN") == await ids(kind="phan_anh") == {power}
    assert await ids(status="assigned") == {road, water, power, late}
    assert await ids(overdue="true") == {late}
    assert await ids(overdue="false") == {road, water, power}
    assert await ids(**{"from": "2026-04-01", "to": "2026-04-30"}) == {power}
    # Scope: an assignee finds only its own, whatever it searches for.
    assert await ids(headers=as_agency("SO_XAY_DUNG")) == {road}
    assert await ids(headers=as_agency("SO_XAY_DUNG"), q="ô nhiễm") == set()
    # Pagination.
    page = (
        await client.get("/v1/recommendations", params={"page_size": 3, "page": 2}, headers=sup)
    ).json()
    assert page["total"] == 4
    assert len(page["items"]) == 1
    bad = await client.get("/v1/recommendations", params={"page_size": 0}, headers=sup)
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_request"


MINE, THEIRS = "UBND_XA_XA_AN_BINH", "UBND_XA_XA_TAN_PHU"  # two commune committees


async def test_search_by_source_ref_finds_the_submitters_case_within_scope(
    store, ev, new_id, client, as_agency
) -> None:
    mine, theirs, other = new_id(), new_id(), new_id()
    store([ev.received(mine, submitted_by=MINE).model_copy(update={"source_ref": "KN-7"})])
    # another agency happens to use the same reference
    store([ev.received(theirs, submitted_by=THEIRS).model_copy(update={"source_ref": "KN-7"})])
    store([ev.received(other, submitted_by=MINE).model_copy(update={"source_ref": "KN-8"})])

    def search(agency: str, ref: str):
        return client.get(
            "/v1/recommendations", params={"source_ref": ref}, headers=as_agency(agency)
        )

    found = (await search(MINE, "KN-7")).json()
    assert [i["id"] for i in found["items"]] == [mine]  # the other agency's case stays hidden
    assert (found["items"][0]["source_ref"], found["items"][0]["submitted_by"]) == (
        "KN-7",
        MINE,
    )
    supervisor = (await search("TT_HDND", "KN-7")).json()
    assert {i["id"] for i in supervisor["items"]} == {mine, theirs}
    assert (await search(MINE, "KN-404")).json()["total"] == 0
    status = await client.get(f"/v1/recommendations/{other}", headers=as_agency(MINE))
    assert status.json()["source_ref"] == "KN-8"


def test_migration_fills_source_ref_from_the_stored_received_events(settings, ev, new_id) -> None:
    import importlib.resources

    from alembic import command
    from alembic.config import Config

    from phoihop_audit import db, trail
    from phoihop_audit.app import build_runtime
    from phoihop_testkit.plugin import fixed_pii_cipher

    engine = db.make_engine(settings.database_url)
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(importlib.resources.files("phoihop_audit").joinpath("migrations"))
    )
    with engine.connect() as conn:  # the schema as it was before the column
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002_audit_access_relations")
        conn.commit()
    rec = new_id()
    received = ev.received(rec).model_copy(update={"source_ref": "BB-2025-14"})
    incoming = trail.prepare(ev.envelope(received), cipher=fixed_pii_cipher())
    with engine.begin() as conn:  # what the old code wrote: the event and its row, no ref
        conn.execute(
            text(
                "INSERT INTO audit_events (position, event_id, type, recommendation_id,"
                " sequence, source, event_time, data, content_digest, stored_at, prev_hash,"
                " hash, leaf_hash) VALUES (0, :id, 'received', :rec, 1, 's', NULL, :data,"
                " 'd', 't', 'p', 'h', 'l')"
            ),
            {"id": incoming.event_id, "rec": rec, "data": incoming.data},
        )
        conn.execute(
            text(
                "INSERT INTO audit_recommendations (id, sequence, escalation_level, has_gap)"
                " VALUES (:rec, 1, 0, false)"
            ),
            {"rec": rec},
        )
    engine.dispose()
    runtime = build_runtime(settings)  # migrates to head
    try:
        with runtime.engine.connect() as conn:
            ref = conn.execute(
                text("SELECT source_ref FROM audit_recommendations WHERE id = :rec"), {"rec": rec}
            ).scalar_one()
    finally:
        runtime.engine.dispose()
    assert ref == "BB-2025-14"
