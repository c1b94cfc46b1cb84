"""Headers every HTTP response carries, and the optional bearer token on `/metrics`.

`install(app, metrics_token=...)` wraps a FastAPI (Starlette) app in
`SecurityHeadersMiddleware` (pure ASGI: streaming responses pass through untouched) and
gives an unhandled error's 500 the same headers. A header the route set itself is kept.
(`Cache-Control: no-store` is the routes' business: they set it where a reporter is shown.)
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# JSON, CSV, XLSX and metrics: nothing to load, never framed
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# HTML is only FastAPI's /docs (Swagger UI) and /redoc: their assets come from jsDelivr,
# with one inline bootstrap script, Google fonts (ReDoc) and a blob: worker (ReDoc)
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'"
)


def security_headers(*, content_type: str) -> dict[str, str]:
    """The headers for a response of this content type (the CSP depends on it)."""
    csp = DOCS_CSP if content_type.lower().startswith("text/html") else API_CSP
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


def metrics_authorized(*, token: SecretStr | None, authorization: str | None) -> bool:
    """True when no token is configured or `Authorization: Bearer <token>` presents it."""
    if token is None:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


def metrics_refusal() -> Response:
    """The 401 of a scrape without the metrics token."""
    headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    headers.update(security_headers(content_type="text/plain"))
    return PlainTextResponse("metrics token required\n", status_code=401, headers=headers)


class SecurityHeadersMiddleware:
    """ASGI middleware: security headers on every response, bearer token on `/metrics`."""

    def __init__(self, app: ASGIApp, *, metrics_token: SecretStr | None = None) -> None:
        self.app = app
        self.metrics_token = metrics_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH and not metrics_authorized(
            token=self.metrics_token, authorization=Headers(scope=scope).get("authorization")
        ):
            await metrics_refusal()(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                wanted = security_headers(content_type=headers.get("content-type", ""))
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _server_error(_request: Request, _exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware sends this outside every user middleware
    return PlainTextResponse(
        "Internal Server Error",
        status_code=500,
        headers=security_headers(content_type="text/plain"),
    )


def install(app: Starlette, *, metrics_token: SecretStr | None = None) -> None:
    """Add the security headers (and the metrics token, when set) to every response."""
    app.add_middleware(SecurityHeadersMiddleware, metrics_token=metrics_token)
    app.add_exception_handler(Exception, _server_error)
