"""Reporter identity in the trail: decrypted on arrival, stored encrypted, keys rotate."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from phoihop_audit import trail
from phoihop_audit.db import events
from phoihop_common.pii import PiiCipher, PiiDecryptError, seal_reporter
from phoihop_schemas.events import Reporter
from phoihop_testkit.plugin import fixed_pii_cipher

REPORTER = Reporter(name="Đinh Thị Hồng Nhung", phone="0903 111 222")


def test_a_redelivery_after_key_rotation_is_a_duplicate_and_old_rows_still_open(
    rt, ev, new_id
) -> None:
    rec = new_id()
    envelope = ev.envelope(ev.received(rec, reporter=REPORTER))
    first = trail.append(rt.engine, [trail.prepare(envelope, cipher=rt.cipher)], cipher=rt.cipher)
    assert len(first.stored) == 1

    rotated = PiiCipher(current=bytes(range(1, 33)), old=(fixed_pii_cipher().current,))
    again = trail.prepare(envelope, cipher=rotated)
    result = trail.append(rt.engine, [again], cipher=rotated)
    assert (len(result.duplicates), len(result.conflicts)) == (1, 0)

    with rt.engine.connect() as conn:
        token = conn.execute(
            select(events.c.reporter_enc).where(events.c.recommendation_id == rec)
        ).scalar_one()
    assert "Nhung" not in token
    assert json.loads(rotated.decrypt(token))["name"] == "Đinh Thị Hồng Nhung"


def test_a_reporter_that_does_not_open_is_refused(ev, new_id) -> None:
    rec = new_id()
    envelope = ev.envelope(ev.received(rec, reporter=REPORTER))
    with pytest.raises(PiiDecryptError):
        trail.prepare(envelope, cipher=PiiCipher(current=bytes(32)))
    # A ciphertext sealed for another case does not open in this one.
    other = seal_reporter(REPORTER, recommendation_id=new_id(), cipher=fixed_pii_cipher())
    moved = ev.received(rec).model_copy(update={"reporter": other})
    with pytest.raises(PiiDecryptError):
        trail.prepare(ev.envelope(moved), cipher=fixed_pii_cipher())
