"""schemathesis hooks of the contract test (loaded by the CLI through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import schemathesis

# ingest's JSON lines body is documented as a string: send it as the text it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@schemathesis.hook
def filter_body(_context: schemathesis.HookContext, body: Any) -> bool:
    """Drop a generated webhook URL that notify would accept and call outside 127.0.0.1."""
    url = body.get("url") if isinstance(body, dict) else None
    return not isinstance(url, str) or stays_local(url)


def stays_local(url: str) -> bool:
    """False for an absolute http(s) URL to anywhere but a loopback address."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return True  # refused by notify before any request
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return True
    try:
        return ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:
        return parsed.host == "localhost"
