"""Agency API keys: stored as SHA-256 hashes in config, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from phoihop_common.config import ApiKeyHash, ConfigError, default_config_dir, read_yaml

API_KEY_HEADER = "X-API-Key"


class _KeyEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    agency: str
    hash: ApiKeyHash
    label: str | None = None


class _KeyFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    keys: tuple[_KeyEntry, ...]


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """Hashed agency keys; `agency_for` answers which agency a presented key belongs to."""

    by_hash: dict[str, str]

    @classmethod
    def load(cls, path: Path | str | None = None) -> ApiKeys:
        """Load `api_keys.yaml` (or the file given)."""
        file = Path(path) if path else default_config_dir() / "api_keys.yaml"
        try:
            doc = _KeyFile.model_validate(read_yaml(file))
        except ValueError as exc:
            raise ConfigError(f"invalid {file}: {exc}") from exc
        return cls(by_hash={e.hash: e.agency for e in doc.keys})

    def agency_for(self, key: str | None) -> str | None:
        """Agency code owning `key`, or None."""
        if not key:
            return None
        presented = hash_key(key)
        for stored, agency in self.by_hash.items():
            if hmac.compare_digest(stored, presented):
                return agency
        return None
