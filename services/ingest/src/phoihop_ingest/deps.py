"""Typed FastAPI dependencies of ingest: the runtime and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security

from phoihop_common.errors import api_key_header, unauthorized
from phoihop_ingest.runtime import Runtime

__all__ = ["Caller", "CallerDep", "Runtime", "RuntimeDep", "authenticate", "get_caller"]


# Dependencies are `async def`: FastAPI runs plain `def` ones in a worker thread, two thread
# hand-offs per request for a dict lookup and a hash.
async def get_runtime(request: Request) -> Runtime:
    """The app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Caller:
    """The authenticated agency and the key it presented (forwarded to audit)."""

    agency: str
    key: str


def authenticate(key: str | None, runtime: Runtime) -> Caller:
    """The caller owning the `X-API-Key`; 401 `missing_api_key` or `invalid_api_key`."""
    agency = runtime.keys.agency_for(key)
    if agency is None or not key:
        raise unauthorized(key)
    return Caller(agency=agency, key=key)


async def get_caller(
    runtime: RuntimeDep, key: Annotated[str | None, Security(api_key_header)]
) -> Caller:
    """Authenticate by `X-API-Key`."""
    return authenticate(key, runtime)


CallerDep = Annotated[Caller, Depends(get_caller)]
