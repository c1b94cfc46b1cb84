"""Keys: Ed25519 checkpoint signing and AES-GCM encryption of reporter identity at rest."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phoihop_audit.exceptions import KeyConfigError
from phoihop_audit.settings import AuditSettings

_PII_AAD = b"phoihop-audit/reporter/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyConfigError(f"not base64: {exc}") from exc


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM or base64 of the 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyConfigError("signing key is not an Ed25519 key")
        return key
    raw = _unb64(text)
    if len(raw) != 32:
        raise KeyConfigError("signing key must be 32 raw bytes (base64) or PEM")
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of the 32 raw bytes."""
    raw = _unb64(text)
    if len(raw) != 32:
        raise KeyConfigError("public key must be 32 raw bytes (base64)")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    """Base64 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short stable identifier of a public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _load_or_create(path: Path, make: bytes) -> bytes:
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


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints; knows which public keys a verifier trusts."""

    private: Ed25519PrivateKey
    trusted: dict[str, Ed25519PublicKey]

    @property
    def public(self) -> Ed25519PublicKey:
        """The public half of the signing key."""
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        """Identifier of the signing key."""
        return key_id(self.public)

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature."""
        return _b64(self.private.sign(message))

    def verify(self, *, kid: str, message: bytes, signature: str) -> bool:
        """True when `signature` over `message` is valid for the trusted key `kid`."""
        key = self.trusted.get(kid)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def load_signer(settings: AuditSettings) -> Signer:
    """The checkpoint signer from settings, or a development key kept in the data dir."""
    if settings.signing_key is not None:
        private = parse_signing_key(settings.signing_key.get_secret_value())
    elif settings.environment == "production":
        raise KeyConfigError("PHOIHOP_AUDIT_SIGNING_KEY is required in production")
    else:
        fresh = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem = _load_or_create(settings.resolved_data_dir / "audit_signing_key.pem", fresh)
        private = parse_signing_key(pem.decode())
    trusted = {key_id(private.public_key()): private.public_key()}
    for text in filter(None, (t.strip() for t in settings.trusted_public_keys.split(","))):
        pub = parse_public_key(text)
        trusted[key_id(pub)] = pub
    return Signer(private=private, trusted=trusted)


@dataclass(frozen=True)
class PiiCipher:
    """AES-256-GCM for reporter identity at rest, plus a keyed digest for content proofs."""

    key: bytes

    def encrypt(self, plaintext: bytes) -> str:
        """`v1:` + base64(nonce || ciphertext)."""
        nonce = os.urandom(12)
        return "v1:" + _b64(nonce + AESGCM(self.key).encrypt(nonce, plaintext, _PII_AAD))

    def decrypt(self, token: str) -> bytes:
        """Inverse of `encrypt`."""
        if not token.startswith("v1:"):
            raise KeyConfigError("unknown ciphertext version")
        blob = _unb64(token[3:])
        try:
            return AESGCM(self.key).decrypt(blob[:12], blob[12:], _PII_AAD)
        except InvalidTag as exc:
            raise KeyConfigError("reporter identity cannot be decrypted with this key") from exc

    def digest(self, data: bytes) -> str:
        """Keyed digest (proves sameness of content without revealing it)."""
        sub = hmac.new(self.key, b"content-digest", hashlib.sha256).digest()
        return hmac.new(sub, data, hashlib.sha256).hexdigest()


def load_pii_cipher(settings: AuditSettings) -> PiiCipher:
    """The reporter-identity cipher from settings, or a development key in the data dir."""
    if settings.pii_key is not None:
        raw = _unb64(settings.pii_key.get_secret_value())
    elif settings.environment == "production":
        raise KeyConfigError("PHOIHOP_AUDIT_PII_KEY is required in production")
    else:
        stored = _load_or_create(
            settings.resolved_data_dir / "audit_pii.key", _b64(AESGCM.generate_key(256)).encode()
        )
        raw = _unb64(stored.decode())
    if len(raw) != 32:
        raise KeyConfigError("pii key must be 32 bytes (base64)")
    return PiiCipher(key=raw)
