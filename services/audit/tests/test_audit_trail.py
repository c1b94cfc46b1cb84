"""The stored trail: exactly once, out-of-order convergence, gaps, tamper evidence, proofs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from phoihop_audit import log, merkle
from phoihop_audit.app import Runtime
from phoihop_audit.keys import parse_public_key
from phoihop_audit.settings import AuditSettings

SUPERVISOR = {"X-API-Key": "dev-TT_HDND"}

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def _lifecycle(ev, rec):
    received = ev.received(rec)
    assigned = ev.assigned(rec)
    answered = ev.answered(rec)
    return [received, assigned, answered, ev.outcome(rec, of=assigned)]


def test_same_events_delivered_twice_are_stored_once(rt: Runtime, store, ev, new_id) -> None:
    rec = new_id()
    events = _lifecycle(ev, rec)
    first = store(events)
    assert len(first.stored) == 4
    assert not first.duplicates
    again = store([*events, *events])  # redelivered, and twice within one batch
    assert not again.stored
    assert len(again.duplicates) == 8
    assert not again.conflicts
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 4
        assert conn.execute(text("SELECT size FROM audit_log_head")).scalar_one() == 4
    assert log.verify_log(rt.engine, signer=rt.signer)["ok"]


def test_same_id_with_other_content_is_a_conflict_not_a_duplicate(
    rt: Runtime, store, ev, new_id
) -> None:
    rec = new_id()
    store([ev.received(rec)])
    forged = ev.received(rec, text="Nội dung khác hẳn")  # same (rec, sequence) → same event id
    result = store([forged])
    assert not result.stored
    assert not result.duplicates
    assert len(result.conflicts) == 1
    with rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT data FROM audit_events")).scalar_one()
    assert "đường liên thôn" in json.loads(stored)["text"]


async def test_out_of_order_arrival_converges(
    rt: Runtime, store, ev, new_id, client, as_agency
) -> None:
    rec = new_id()
    received, assigned, answered = ev.received(rec), ev.assigned(rec), ev.answered(rec)
    store([answered])
    store([assigned])
    mid = await client.get(f"/v1/recommendations/{rec}", headers=as_agency("TT_HDND"))
    assert mid.json()["status"] == "answered"
    assert mid.json()["missing_sequences"] == [1]
    store([received])
    body = (await client.get(f"/v1/recommendations/{rec}", headers=as_agency("TT_HDND"))).json()
    assert body["status"] == "answered"
    assert body["sequence"] == 3
    assert body["missing_sequences"] == []
    assert body["agency"] == "SO_XAY_DUNG"
    assert body["kind"] == "kien_nghi"
    assert body["category"] == "GIAO_THONG"
    assert body["level"] == "tinh"
    assert body["deadline"] == "2026-06-03T09:00:00Z"
    assert body["answered_on_time"] is True
    assert body["overdue"] is False
    assert [a["agency"] for a in body["assignments"]] == ["SO_XAY_DUNG"]
    trail = (
        await client.get(f"/v1/recommendations/{rec}/trail", headers=as_agency("TT_HDND"))
    ).json()
    assert [(e["type"], e["sequence"]) for e in trail["events"]] == [
        ("received", 1),
        ("assigned", 2),
        ("answered", 3),
    ]
    assert (await client.get("/v1/audit/verify")).json()["ok"] is True


async def test_gap_is_reported_by_reconciliation_and_metric(
    store, ev, new_id, client, as_agency
) -> None:
    whole, holed = new_id(), new_id()
    store([ev.received(whole), ev.assigned(whole)])
    store([ev.received(holed), ev.answered(holed, seq=3)])  # sequence 2 never arrived
    body = (await client.get("/v1/audit/reconciliation", headers=as_agency("TT_HDND"))).json()
    assert body["gaps"] == [{"id": holed, "sequence": 3, "missing": [2]}]
    metrics = (await client.get("/metrics")).text
    assert "phoihop_audit_sequence_gaps 1.0" in metrics
    store([ev.assigned(holed)])  # the late event fills the hole
    body = (await client.get("/v1/audit/reconciliation", headers=as_agency("TT_HDND"))).json()
    assert body["gaps"] == []
    assert "phoihop_audit_sequence_gaps 0.0" in (await client.get("/metrics")).text


def _tamper_setup(rt: Runtime, store, ev, new_id) -> list[str]:
    recs = [new_id() for _ in range(3)]
    for rec in recs:
        store(_lifecycle(ev, rec))
    assert log.make_checkpoint(rt.engine, signer=rt.signer) is not None
    assert log.verify_log(rt.engine, signer=rt.signer)["ok"]
    return recs


def _cli_verify(settings: AuditSettings) -> tuple[int, dict]:
    env = os.environ | {
        "PHOIHOP_AUDIT_DATABASE_URL": settings.database_url,
        "PHOIHOP_AUDIT_DATA_DIR": str(settings.data_dir),
        "PHOIHOP_AUDIT_CONFIG_DIR": str(settings.config_dir),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "phoihop_audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_edited_row_is_named_by_verify(rt: Runtime, settings, store, ev, new_id) -> None:
    recs = _tamper_setup(rt, store, ev, new_id)
    with rt.engine.begin() as conn:
        victim = conn.execute(
            text(
                "SELECT position, event_id FROM audit_events WHERE recommendation_id = :r "
                "AND type = 'answered'"
            ),
            {"r": recs[1]},
        ).one()
        conn.execute(
            text(
                "UPDATE audit_events SET data = replace(data, 'quý III', 'quý IV') "
                "WHERE position = :p"
            ),
            {"p": victim.position},
        )
    result = log.verify_log(rt.engine, signer=rt.signer)
    assert result["ok"] is False
    assert result["first_bad"]["event_id"] == victim.event_id
    assert result["first_bad"]["position"] == victim.position
    assert result["first_bad"]["reason"] == "hash_mismatch"
    code, printed = _cli_verify(settings)
    assert code == 1
    assert printed["first_bad"]["event_id"] == victim.event_id


def test_recomputed_chain_is_caught_by_the_signed_checkpoint(
    rt: Runtime, store, ev, new_id
) -> None:
    from phoihop_audit.trail import chain_hash, leaf_hash_hex

    _tamper_setup(rt, store, ev, new_id)
    # A thorough forger rewrites the first record and re-hashes the whole chain after it.
    with rt.engine.begin() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(text("SELECT * FROM audit_events ORDER BY position"))
        ]
        rows[0]["data"] = rows[0]["data"].replace("liên thôn", "nội thị")
        prev = "0" * 64
        for row in rows:
            row["prev_hash"] = prev
            row["hash"], row["leaf_hash"] = chain_hash(row), leaf_hash_hex(row)
            prev = row["hash"]
            conn.execute(
                text(
                    "UPDATE audit_events SET data=:data, prev_hash=:prev_hash, hash=:hash, "
                    "leaf_hash=:leaf_hash WHERE position=:position"
                ),
                row,
            )
        conn.execute(text("UPDATE audit_log_head SET head_hash=:h"), {"h": prev})
    result = log.verify_log(rt.engine, signer=rt.signer)
    assert result["ok"] is False
    assert result["first_bad"]["reason"] == "checkpoint_root_mismatch"


def test_deleted_row_is_named_by_verify(rt: Runtime, settings, store, ev, new_id) -> None:
    _tamper_setup(rt, store, ev, new_id)
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE position = 5"))
    result = log.verify_log(rt.engine, signer=rt.signer)
    assert result["ok"] is False
    assert result["first_bad"]["position"] == 5
    assert result["first_bad"]["reason"] == "missing_record"
    assert result["checked"] == 5
    code, printed = _cli_verify(settings)
    assert code == 1
    assert printed["first_bad"]["position"] == 5


async def test_checkpoints_and_proofs_verify(rt: Runtime, store, ev, new_id, client) -> None:
    first_recs = [new_id() for _ in range(3)]
    for rec in first_recs:
        store(_lifecycle(ev, rec))
    cp1 = log.make_checkpoint(rt.engine, signer=rt.signer)
    assert log.make_checkpoint(rt.engine, signer=rt.signer) is None  # nothing new
    for _ in range(2):
        store(_lifecycle(ev, new_id()))
    store([ev.received(new_id(), at=T0 + timedelta(days=1))])
    cp2 = log.make_checkpoint(rt.engine, signer=rt.signer)
    assert cp1 is not None
    assert cp2 is not None
    assert (cp1.tree_size, cp2.tree_size) == (12, 21)

    listing = (await client.get("/v1/audit/checkpoints")).json()
    public = parse_public_key(listing["public_key"])
    assert [c["tree_size"] for c in listing["checkpoints"]] == [21, 12]
    for c in listing["checkpoints"]:
        message = log.checkpoint_message(
            tree_size=c["tree_size"], root_hash=c["root_hash"], created_at=c["created_at"]
        )
        public.verify(base64.b64decode(c["signature"]), message)  # raises if forged

    event_id = ev.envelope(ev.answered(first_recs[1])).id
    for size in (12, 21):
        proof = (
            await client.get(
                "/v1/audit/proof/inclusion", params={"event_id": event_id, "tree_size": size}
            )
        ).json()
        root = next(c["root_hash"] for c in listing["checkpoints"] if c["tree_size"] == size)
        assert proof["root_hash"] == root
        assert merkle.verify_inclusion(
            index=proof["leaf_index"],
            tree_size=size,
            leaf=bytes.fromhex(proof["leaf_hash"]),
            proof=[bytes.fromhex(h) for h in proof["audit_path"]],
            root_hash=bytes.fromhex(root),
        )

    cons = (
        await client.get("/v1/audit/proof/consistency", params={"first": 12, "second": 21})
    ).json()
    assert merkle.verify_consistency(
        first=12,
        second=21,
        first_root=bytes.fromhex(cons["first"]["root_hash"]),
        second_root=bytes.fromhex(cons["second"]["root_hash"]),
        proof=[bytes.fromhex(h) for h in cons["proof"]],
    )
    bad = await client.get("/v1/audit/proof/consistency", params={"first": 12, "second": 13})
    assert bad.status_code == 404
    assert bad.json()["error"] == "not_found"
    outside = await client.get(
        "/v1/audit/proof/inclusion",
        params={"event_id": ev.envelope(ev.received(first_recs[0])).id, "tree_size": 99},
    )
    assert outside.status_code == 400
    assert outside.json()["error"] == "bad_tree_size"
    verify = (await client.get("/v1/audit/verify")).json()
    assert verify == verify | {"ok": True, "mode": "checkpoint", "tree_size": 21, "first_bad": None}
    full = await client.get("/v1/audit/verify", params={"full": 1}, headers=SUPERVISOR)
    assert full.json() == full.json() | {"ok": True, "mode": "full", "checked": 21}
    assert full.json()["checkpoint"]["tree_size"] == 21
