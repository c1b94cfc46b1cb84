"""Refuse webhook URLs that resolve to private, loopback or link-local addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence

import httpx

from phoihop_notify.exceptions import UrlNotAllowedError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def forbidden(addr: Address) -> bool:
    """True for addresses a webhook must not reach without an allowlist entry."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


def check_addresses(addresses: Sequence[Address], *, allowed: Sequence[Network]) -> None:
    """Raise UrlNotAllowedError when any resolved address is forbidden and not allowlisted."""
    if not addresses:
        raise UrlNotAllowedError("host does not resolve")
    for addr in addresses:
        if forbidden(addr) and not any(addr in net for net in allowed):
            raise UrlNotAllowedError(f"{addr} is a private, loopback or link-local address")


async def check_url(url: str, *, allowed: Sequence[Network]) -> None:
    """Validate scheme and host of a webhook URL and every address it resolves to."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlNotAllowedError(f"invalid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UrlNotAllowedError("only absolute http(s) URLs are accepted")
    try:
        literal = ipaddress.ip_address(parsed.host)
    except ValueError:
        literal = None
    if literal is not None:  # nothing to resolve
        check_addresses([literal], allowed=allowed)
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.host, port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not a valid IDNA name
        raise UrlNotAllowedError(f"host does not resolve: {parsed.host}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    check_addresses(addresses, allowed=allowed)


class UrlGuard:
    """`check_url` with each URL's verdict remembered for `ttl` seconds (one lookup per URL).

    The dispatcher checks every attempt; resolving the host each time would cost a thread
    hop and a DNS query per webhook.
    """

    def __init__(self, *, allowed: Sequence[Network], ttl: float = 30.0, size: int = 10_000):
        self.allowed = tuple(allowed)
        self.ttl = ttl
        self.size = size
        self._verdicts: dict[str, tuple[float, str | None]] = {}

    async def check(self, url: str) -> None:
        """Raise UrlNotAllowedError when the URL may not be called."""
        now = time.monotonic()
        known = self._verdicts.get(url)
        if known is None or known[0] <= now:
            error: str | None = None
            try:
                await check_url(url, allowed=self.allowed)
            except UrlNotAllowedError as exc:
                error = exc.detail
            if len(self._verdicts) >= self.size:
                self._verdicts.clear()
            known = self._verdicts[url] = (now + self.ttl, error)
        if known[1] is not None:
            raise UrlNotAllowedError(known[1])
