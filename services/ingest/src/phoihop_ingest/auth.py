"""Caller authentication: the presented key is hashed once and looked up by its hash."""

from __future__ import annotations

import hmac

from phoihop_common.auth import ApiKeys, hash_key


class KeyIndex:
    """Agencies by stored key hash: one SHA-256 and one dict lookup per request.

    The dict compares digests, not keys, so its timing says nothing usable about a key;
    the constant-time compare of the digest keeps the check explicit anyway.
    """

    def __init__(self, keys: ApiKeys) -> None:
        self._entries = {stored: (stored, agency) for stored, agency in keys.by_hash.items()}

    def agency_for(self, key: str | None) -> str | None:
        """Agency code owning `key`, or None."""
        if not key:
            return None
        presented = hash_key(key)
        entry = self._entries.get(presented)
        if entry is None or not hmac.compare_digest(entry[0], presented):
            return None
        return entry[1]
