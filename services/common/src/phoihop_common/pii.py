"""Reporter identity encrypted with AES-256-GCM under a keyring that rotates without re-encryption.

A keyring is the current key (encrypts) plus old keys (still decrypt). Every ciphertext names
the key that made it, so adding a new current key and keeping the previous one among the old
keys is the whole rotation: nothing stored or on a topic has to be re-encrypted to stay
readable. ingest, notify and audit hold the same keyring (`PHOIHOP_<SVC>_PII_KEY`,
`PHOIHOP_<SVC>_PII_OLD_KEYS`); resolvers' systems never get it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.engine import make_url

from phoihop_schemas.events import EncryptedReporter, Reporter

TOKEN_VERSION = "pii1"
DEV_KEY_FILE = "pii.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_AAD = b"phoihop/pii/v1"
_LEGACY_AAD = b"phoihop-audit/reporter/v1"  # audit's `v1:` tokens, from before the keyring


class KeyConfigError(Exception):
    """A key is missing or unreadable, or a ciphertext opens with none of the keys."""


class PiiDecryptError(KeyConfigError):
    """A ciphertext names an unknown key, or fails authentication (wrong key or tampered)."""


class PiiSettings(BaseModel):
    """Keyring settings of a service that handles reporter identity (embedded in its settings)."""

    pii_key: SecretStr | None = None  # base64 of 32 bytes: the current key
    pii_old_keys: SecretStr | None = None  # comma-separated base64 keys that still decrypt


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    """Inverse of `b64`; raises KeyConfigError on malformed input."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyConfigError(f"not base64: {exc}") from exc


def key_id(key: bytes) -> str:
    """Short stable identifier of a key (reveals nothing usable about it)."""
    return hashlib.sha256(b"phoihop/pii/key-id\0" + key).hexdigest()[:16]


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _aad(context: str) -> bytes:
    return _AAD + b"\0" + context.encode()


@dataclass(frozen=True)
class Sealed:
    """One AES-GCM ciphertext (tag included) with its nonce and the id of its key."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class PiiCipher:
    """AES-256-GCM under a keyring: encrypts with `current`, decrypts with any key listed."""

    current: bytes
    old: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = (self.current, *self.old)
        if any(len(k) != KEY_BYTES for k in keys):
            raise KeyConfigError(f"a pii key must be {KEY_BYTES} bytes (base64)")
        object.__setattr__(self, "_by_id", {key_id(k): k for k in keys})

    @property
    def key_id(self) -> str:
        """Identifier of the current key."""
        return key_id(self.current)

    def seal(self, plaintext: bytes, *, context: str = "") -> Sealed:
        """Encrypt with the current key; `context` must be given again to open it."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(self.current).encrypt(nonce, plaintext, _aad(context))
        return Sealed(key_id=self.key_id, nonce=nonce, ciphertext=ciphertext)

    def unseal(self, sealed: Sealed, *, context: str = "") -> bytes:
        """Decrypt with the key the ciphertext names. Raises PiiDecryptError."""
        key = self._by_id.get(sealed.key_id)
        if key is None:
            raise PiiDecryptError(f"pii key {sealed.key_id} is not configured")
        try:
            return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, _aad(context))
        except (InvalidTag, ValueError) as exc:
            raise PiiDecryptError(f"ciphertext does not open with pii key {sealed.key_id}") from exc

    def encrypt(self, plaintext: bytes) -> str:
        """Compact token for storage: `pii1:<key id>:<base64(nonce || ciphertext)>`."""
        s = self.seal(plaintext)
        return f"{TOKEN_VERSION}:{s.key_id}:{b64(s.nonce + s.ciphertext)}"

    def decrypt(self, token: str) -> bytes:
        """Inverse of `encrypt` (also reads audit's earlier `v1:` tokens). Raises KeyConfigError."""
        if token.startswith("v1:"):
            return self._decrypt_legacy(unb64(token[3:]))
        version, _, rest = token.partition(":")
        kid, _, blob = rest.partition(":")
        if version != TOKEN_VERSION or not kid or not blob:
            raise PiiDecryptError("unknown ciphertext format")
        raw = unb64(blob)
        return self.unseal(
            Sealed(key_id=kid, nonce=raw[:NONCE_BYTES], ciphertext=raw[NONCE_BYTES:])
        )

    def _decrypt_legacy(self, raw: bytes) -> bytes:
        for key in self._by_id.values():
            with contextlib.suppress(InvalidTag, ValueError):
                return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _LEGACY_AAD)
        raise PiiDecryptError("reporter identity cannot be decrypted with any configured key")

    def digest(self, data: bytes) -> str:
        """Keyed digest under the current key (proves sameness of content without revealing it)."""
        return _digest(self.current, data)

    def digests(self, data: bytes) -> frozenset[str]:
        """The keyed digest under every key (the same content digested before a rotation)."""
        return frozenset(_digest(k, data) for k in self._by_id.values())


def _digest(key: bytes, data: bytes) -> str:
    sub = hmac.new(key, b"content-digest", hashlib.sha256).digest()
    return hmac.new(sub, data, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the reporter


def _reporter_context(recommendation_id: str) -> str:
    # Bound to its case: a ciphertext copied into another case's event does not open.
    return f"reporter/{recommendation_id}"


def seal_reporter(
    reporter: Reporter, *, recommendation_id: str, cipher: PiiCipher
) -> EncryptedReporter:
    """The reporter as the `received` event carries it."""
    plaintext = canonical_json(reporter.model_dump(mode="json")).encode()
    s = cipher.seal(plaintext, context=_reporter_context(recommendation_id))
    return EncryptedReporter(key_id=s.key_id, nonce=b64(s.nonce), ciphertext=b64(s.ciphertext))


def open_reporter(
    sealed: EncryptedReporter, *, recommendation_id: str, cipher: PiiCipher
) -> Reporter:
    """Inverse of `seal_reporter`. Raises PiiDecryptError."""
    raw = Sealed(
        key_id=sealed.key_id, nonce=unb64(sealed.nonce), ciphertext=unb64(sealed.ciphertext)
    )
    plaintext = cipher.unseal(raw, context=_reporter_context(recommendation_id))
    try:
        return Reporter.model_validate_json(plaintext)
    except ValidationError as exc:
        raise PiiDecryptError("decrypted reporter is not a reporter") from exc


# --------------------------------------------------------------------------- loading keys


def load_or_create(path: Path, make: bytes) -> bytes:
    """Read a development key file, creating it atomically (first writer wins) if absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(make)
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    return path.read_bytes()


def dev_key_dir(database_url: str) -> Path:
    """Where development keys live: next to the SQLite file, else `var/`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return Path("var")


def load_pii_cipher(
    settings: PiiSettings,
    *,
    service: str,
    production: bool,
    dev_dir: Path,
    legacy_dev_files: tuple[str, ...] = (),
) -> PiiCipher:
    """The keyring from settings; in development a key generated once in `dev_dir/pii.key`.

    ingest, notify and audit started by `make run` share that file (their SQLite files are in
    the same directory), so what ingest encrypts the others can read.
    """
    env = f"PHOIHOP_{service.upper()}_PII_KEY"
    old: list[bytes] = []
    if settings.pii_old_keys is not None:
        text = settings.pii_old_keys.get_secret_value()
        old = [unb64(k) for k in text.split(",") if k.strip()]
    if settings.pii_key is not None:
        current = unb64(settings.pii_key.get_secret_value())
    elif production:
        raise KeyConfigError(f"{env} is required in production")
    else:
        stored = load_or_create(dev_dir / DEV_KEY_FILE, b64(AESGCM.generate_key(256)).encode())
        current = unb64(stored.decode())
        for name in legacy_dev_files:
            if (dev_dir / name).is_file():
                old.append(unb64((dev_dir / name).read_text()))
    return PiiCipher(current=current, old=tuple(k for k in old if k != current))
