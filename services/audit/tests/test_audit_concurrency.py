"""Several writers (audit replicas) appending at once keep one unbroken chain; key settings."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from phoihop_audit import db, log, trail
from phoihop_audit.app import Runtime
from phoihop_audit.exceptions import KeyConfigError
from phoihop_audit.keys import load_pii_cipher, load_signer
from phoihop_audit.settings import AuditSettings


def test_concurrent_appenders_serialise_on_the_log_head(rt: Runtime, ev, new_id) -> None:
    recs = [new_id() for _ in range(12)]
    batches = [
        [ev.envelope(m) for m in (ev.received(r), ev.assigned(r), ev.answered(r))] for r in recs
    ]
    # Every writer also offers the events of its neighbour: overlaps must be deduplicated.
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        engine = db.make_engine(rt.settings.database_url)  # its own pool, like another replica
        try:
            for batch in (batches[i], batches[(i + 1) % len(batches)]):
                items = [trail.prepare(e, cipher=rt.cipher) for e in batch]
                trail.append(engine, items, cipher=rt.cipher)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 36
        positions = [p for (p,) in conn.execute(text("SELECT position FROM audit_events"))]
    assert sorted(positions) == list(range(36))
    assert log.make_checkpoint(rt.engine, signer=rt.signer) is not None
    result = log.verify_log(rt.engine, signer=rt.signer)
    assert result["ok"] is True
    assert result["checked"] == 36


def test_production_refuses_missing_keys_and_development_keeps_its_own(tmp_path) -> None:
    with pytest.raises(ValidationError, match="signing_key"):
        AuditSettings(environment="production", pii_key="x" * 44)
    with pytest.raises(KeyConfigError):
        load_signer(AuditSettings.model_construct(environment="production", signing_key=None))
    dev = AuditSettings(data_dir=tmp_path)
    assert load_signer(dev).key_id == load_signer(dev).key_id  # generated once, then reused
    assert (tmp_path / "audit_signing_key.pem").stat().st_mode & 0o777 == 0o600
    cipher = load_pii_cipher(dev)
    assert cipher.decrypt(cipher.encrypt(b"Nguyen Van A")) == b"Nguyen Van A"
    other = load_pii_cipher(AuditSettings(data_dir=tmp_path / "other"))
    with pytest.raises(KeyConfigError):
        other.decrypt(cipher.encrypt(b"secret"))
