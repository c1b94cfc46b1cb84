"""The worker's pages (faust web, i.e. aiohttp): security headers, metrics token.

The same headers and token rule as the FastAPI services (`phoihop_common.http`): a signal
adds the headers to every response, aiohttp's own 404 and 500 included; a middleware asks
for `Authorization: Bearer <metrics_token>` on `/metrics` when a token is set.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from pydantic import SecretStr

from phoihop_common.http import (
    METRICS_PATH,
    METRICS_TOKEN_REQUIRED,
    metrics_authorized,
    security_headers,
)
from phoihop_routing.exceptions import RoutingError


def install(faust_web: Any, *, metrics_token: SecretStr | None) -> None:
    """Add the headers and the metrics token to faust's web server (before it starts)."""
    if not isinstance(faust_web, AiohttpWeb):
        raise RoutingError(f"faust web driver {type(faust_web).__name__}: aiohttp expected")
    web_app = faust_web.web_app

    @web.middleware
    async def require_metrics_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        if request.path == METRICS_PATH and not metrics_authorized(
            token=metrics_token, authorization=authorization
        ):
            return web.json_response(
                {
                    "error": METRICS_TOKEN_REQUIRED,
                    "detail": "send the metrics token as `Authorization: Bearer`",
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return await handler(request)

    web_app.middlewares.append(require_metrics_token)
    web_app.on_response_prepare.append(_add_security_headers)


async def _add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in security_headers(content_type=response.content_type).items():
        response.headers.setdefault(name, value)
