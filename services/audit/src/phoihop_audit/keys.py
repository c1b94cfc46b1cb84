"""Keys: Ed25519 checkpoint signing, and the reporter-identity keyring (`phoihop_common.pii`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from phoihop_audit.exceptions import KeyConfigError
from phoihop_audit.settings import AuditSettings
from phoihop_common import pii
from phoihop_common.pii import PiiCipher

__all__ = ["PiiCipher", "Signer", "load_pii_cipher", "load_signer"]


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM or base64 of the 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyConfigError("signing key is not an Ed25519 key")
        return key
    raw = pii.unb64(text)
    if len(raw) != 32:
        raise KeyConfigError("signing key must be 32 raw bytes (base64) or PEM")
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of the 32 raw bytes."""
    raw = pii.unb64(text)
    if len(raw) != 32:
        raise KeyConfigError("public key must be 32 raw bytes (base64)")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    """Base64 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pii.b64(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short stable identifier of a public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


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
        return pii.b64(self.private.sign(message))

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
        pem = pii.load_or_create(settings.resolved_data_dir / "audit_signing_key.pem", fresh)
        private = parse_signing_key(pem.decode())
    trusted = {key_id(private.public_key()): private.public_key()}
    for text in filter(None, (t.strip() for t in settings.trusted_public_keys.split(","))):
        pub = parse_public_key(text)
        trusted[key_id(pub)] = pub
    return Signer(private=private, trusted=trusted)


def load_pii_cipher(settings: AuditSettings) -> PiiCipher:
    """The reporter-identity keyring from settings, or the development key in the data dir."""
    return pii.load_pii_cipher(
        settings,
        service="audit",
        production=settings.environment == "production",
        dev_dir=settings.resolved_data_dir,
        legacy_dev_files=("audit_pii.key",),  # audit's own key before the shared keyring
    )
