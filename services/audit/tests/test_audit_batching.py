"""One transaction per batch: a stale head hint (another writer appended) and a failed batch."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from phoihop_audit import db, log, trail
from phoihop_audit.app import Runtime


def test_writers_taking_turns_keep_one_chain(rt: Runtime, ev, new_id) -> None:
    other = db.make_engine(rt.settings.database_url)  # another replica: its own head hint
    try:
        for turn in range(6):
            rec = new_id()
            models = [ev.received(rec), ev.assigned(rec), ev.answered(rec)]
            items = [trail.prepare(ev.envelope(m), cipher=rt.cipher) for m in models]
            engine = rt.engine if turn % 2 else other
            assert len(trail.append(engine, items, cipher=rt.cipher).stored) == 3
            # the other writer's hint is now stale; it redelivers: duplicates, nothing moves
            peer = other if turn % 2 else rt.engine
            again = trail.append(peer, items, cipher=rt.cipher)
            assert not again.stored
            assert len(again.duplicates) == 3
    finally:
        other.dispose()
    with rt.engine.connect() as conn:
        positions = [p for (p,) in conn.execute(text("SELECT position FROM audit_events"))]
        assert conn.execute(text("SELECT count(*) FROM audit_recommendations")).scalar_one() == 6
    assert sorted(positions) == list(range(18))
    assert log.verify_log(rt.engine, signer=rt.signer)["ok"]


def test_a_failed_batch_stores_nothing_and_the_next_one_chains_on(
    rt: Runtime, ev, new_id, monkeypatch
) -> None:
    rec = new_id()
    first = [trail.prepare(ev.envelope(ev.received(rec)), cipher=rt.cipher)]
    trail.append(rt.engine, first, cipher=rt.cipher)
    batch = [
        trail.prepare(ev.envelope(m), cipher=rt.cipher)
        for m in (ev.assigned(rec), ev.answered(rec))
    ]

    def boom(*_a, **_k) -> None:
        raise RuntimeError("read model failed")

    monkeypatch.setattr(trail, "refresh_recommendations", boom)
    with pytest.raises(RuntimeError):
        trail.append(rt.engine, batch, cipher=rt.cipher)
    monkeypatch.undo()
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1
        assert conn.execute(text("SELECT size FROM audit_log_head")).scalar_one() == 1
    for item in batch:  # the kit's per-record retry
        assert len(trail.append(rt.engine, [item], cipher=rt.cipher).stored) == 1
    with rt.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM audit_recommendations")).scalar_one()
    assert status == "answered"
    assert log.verify_log(rt.engine, signer=rt.signer)["ok"]
