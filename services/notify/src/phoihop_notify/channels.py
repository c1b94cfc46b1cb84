"""Delivery channels behind one small interface: webhooks (httpx), email (SMTP), a test double."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx

try:  # installed with the workspace (faust-streaming needs it); far cheaper per request
    import aiohttp
except ImportError:  # pragma: no cover - httpx is then used
    aiohttp = None  # type: ignore[assignment]
from standardwebhooks import Webhook

from phoihop_notify.policy import Result, parse_retry_after


@dataclass(frozen=True)
class Message:
    """One event as a channel sends it."""

    id: str  # `webhook-id`: stable per (event, subscription), the same on every retry
    event_type: str
    recommendation_id: str
    body: bytes  # the CloudEvent in structured JSON mode
    summary: str  # short human-readable text (email subject line)


@dataclass(frozen=True)
class Target:
    """Where a message goes: a URL or email addresses, and the signing secrets in force."""

    address: str
    secrets: tuple[str, ...] = ()


class Channel(Protocol):
    """A way of telling an agency or a person."""

    name: str

    async def deliver(self, *, target: Target, message: Message) -> Result:
        """Make one attempt; never raise for a failure of the other side."""
        ...


def signature_header(*, secrets: tuple[str, ...], msg_id: str, at: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<sig>` per secret in force (two during a rotation)."""
    return " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets)


class HttpError(Exception):
    """The request got no HTTP response (connection, protocol or timeout failure)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Poster(Protocol):
    """One HTTP POST: (status, Retry-After header) or HttpError."""

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        """Send; never follow redirects."""
        ...

    async def close(self) -> None:
        """Close the connection pool."""
        ...


class HttpxPoster:
    """POST with httpx (the fallback when aiohttp is not installed)."""

    def __init__(
        self, *, timeout: float, max_connections: int, client: httpx.AsyncClient | None = None
    ) -> None:
        self.timeout = timeout
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            ),
        )

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        """Send one request."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(url, content=body, headers=headers)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise HttpError(f"timeout: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}"[:500]) from exc
        return response.status_code, response.headers.get("retry-after")

    async def close(self) -> None:
        """Close the pool."""
        await self._client.aclose()


class AiohttpPoster:
    """POST with aiohttp: about a tenth of httpx's CPU per request, which bounds throughput."""

    def __init__(self, *, timeout: float, max_connections: int, per_host: int) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        self.per_host = per_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Created lazily, inside the running event loop.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections,
                    limit_per_host=self.per_host,
                    keepalive_timeout=30.0,
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        """Send one request; read at most 64 KiB of the answer (a longer one is not reused)."""
        try:
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(65536)
                return response.status, response.headers.get("retry-after")
        except TimeoutError as exc:
            raise HttpError(f"timeout: {type(exc).__name__}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}"[:500]) from exc

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()


class WebhookChannel:
    """Standard Webhooks over HTTP POST, through one shared keep-alive connection pool."""

    name = "webhook"

    def __init__(
        self,
        *,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 100,
        per_host: int = 16,
        backend: str = "auto",
    ) -> None:
        self.timeout = timeout
        if backend == "auto":
            backend = "aiohttp" if aiohttp is not None and client is None else "httpx"
        self.poster: Poster
        if backend == "aiohttp":
            if aiohttp is None:
                raise RuntimeError("aiohttp is not installed")
            self.poster = AiohttpPoster(
                timeout=timeout, max_connections=max_connections, per_host=per_host
            )
        else:
            self.poster = HttpxPoster(
                timeout=timeout, max_connections=max_connections, client=client
            )
        self.backend = backend

    async def deliver(self, *, target: Target, message: Message) -> Result:
        """POST the signed CloudEvent; classify the response."""
        now = datetime.now(UTC)
        body = message.body.decode()
        headers = {
            "content-type": "application/cloudevents+json; charset=utf-8",
            "user-agent": "phoihop-notify/1",
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(
                secrets=target.secrets, msg_id=message.id, at=now, body=body
            ),
        }
        try:
            code, retry_after_header = await self.poster.post(
                target.address, body=message.body, headers=headers
            )
        except HttpError as exc:
            return Result(ok=False, error=exc.error)
        if 200 <= code < 300:
            return Result(ok=True, status_code=code)
        if code == 410:
            return Result(ok=False, status_code=code, error="http_410_gone", gone=True)
        retry_after = None
        if code in (429, 503):
            retry_after = parse_retry_after(retry_after_header, now=now)
        return Result(ok=False, status_code=code, error=f"http_{code}", retry_after=retry_after)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self.poster.close()


class EmailChannel:
    """Email to people through a real SMTP server (aiosmtplib)."""

    name = "email"

    def __init__(self, *, host: str, port: int, sender: str, timeout: float) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def compose(self, *, target: Target, message: Message) -> EmailMessage:
        """The email: summary as subject, the event's data as readable text."""
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = ", ".join(_addresses(target.address))
        email["Subject"] = message.summary
        email["Message-ID"] = f"<{message.id}@phoihop>"
        try:
            event = json.loads(message.body)
            details = json.dumps(event.get("data", event), ensure_ascii=False, indent=2)
        except (ValueError, AttributeError):
            details = message.body.decode(errors="replace")
        email.set_content(
            f"{message.summary}\n\nHồ sơ / recommendation: {message.recommendation_id}\n"
            f"Sự kiện / event: {message.event_type}\n\n{details}\n"
        )
        return email

    async def deliver(self, *, target: Target, message: Message) -> Result:
        """Send one email; an SMTP or network error is a failed attempt."""
        try:
            await aiosmtplib.send(
                self.compose(target=target, message=message),
                hostname=self.host,
                port=self.port,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Result(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Result(ok=True)


def _addresses(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


@dataclass
class RecordingChannel:
    """Test double: records every message and answers with scripted results."""

    name: str = "recording"
    results: list[Result] = field(default_factory=list)
    sent: list[tuple[Target, Message]] = field(default_factory=list)

    async def deliver(self, *, target: Target, message: Message) -> Result:
        """Record the message; pop the next scripted result (default: success)."""
        self.sent.append((target, message))
        return self.results.pop(0) if self.results else Result(ok=True, status_code=200)
