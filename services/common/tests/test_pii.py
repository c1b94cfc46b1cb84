"""The reporter-identity keyring: tokens, rotation, development and production keys."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phoihop_common.pii import (
    KeyConfigError,
    PiiCipher,
    PiiDecryptError,
    PiiSettings,
    load_pii_cipher,
    open_reporter,
    seal_reporter,
)
from phoihop_schemas.events import EncryptedReporter, Reporter


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_token_round_trip_names_its_key_and_rotation_keeps_it_readable() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = PiiCipher(current=old)
    token = before.encrypt("Nguyễn Văn A".encode())
    assert token.startswith(f"pii1:{before.key_id}:")
    rotated = PiiCipher(current=new, old=(old,))
    assert rotated.decrypt(token) == "Nguyễn Văn A".encode()
    assert rotated.decrypt(rotated.encrypt(b"x")) == b"x"
    with pytest.raises(PiiDecryptError):
        PiiCipher(current=new).decrypt(token)
    assert before.digest(b"d") in rotated.digests(b"d")


def test_audits_earlier_v1_tokens_still_open() -> None:
    key = os.urandom(32)
    nonce = os.urandom(12)
    legacy = "v1:" + _b64(
        nonce + AESGCM(key).encrypt(nonce, b"secret", b"phoihop-audit/reporter/v1")
    )
    assert PiiCipher(current=os.urandom(32), old=(key,)).decrypt(legacy) == b"secret"


def test_sealed_reporter_is_ciphertext_bound_to_its_case() -> None:
    cipher = PiiCipher(current=os.urandom(32))
    reporter = Reporter(name="Trần Thị Bình", phone="0987 654 321")
    sealed = seal_reporter(reporter, recommendation_id="r1", cipher=cipher)
    assert EncryptedReporter.model_validate(sealed.model_dump(mode="json")) == sealed
    assert "Bình" not in sealed.model_dump_json()
    assert open_reporter(sealed, recommendation_id="r1", cipher=cipher) == reporter
    with pytest.raises(PiiDecryptError):
        open_reporter(sealed, recommendation_id="r2", cipher=cipher)


def test_keys_from_settings_development_file_and_production(tmp_path) -> None:
    current, old = _b64(os.urandom(32)), _b64(os.urandom(32))
    configured = load_pii_cipher(
        PiiSettings(pii_key=current, pii_old_keys=f"{old}, "),
        service="notify",
        production=True,
        dev_dir=tmp_path,
    )
    assert len(configured.old) == 1
    with pytest.raises(KeyConfigError, match="PHOIHOP_NOTIFY_PII_KEY"):
        load_pii_cipher(PiiSettings(), service="notify", production=True, dev_dir=tmp_path)
    with pytest.raises(KeyConfigError):
        load_pii_cipher(
            PiiSettings(pii_key=_b64(b"short")), service="x", production=True, dev_dir=tmp_path
        )
    # Development: generated once, then every service pointed at the same directory shares it.
    a = load_pii_cipher(PiiSettings(), service="ingest", production=False, dev_dir=tmp_path)
    b = load_pii_cipher(PiiSettings(), service="audit", production=False, dev_dir=tmp_path)
    assert a.current == b.current
    assert (tmp_path / "pii.key").stat().st_mode & 0o777 == 0o600
