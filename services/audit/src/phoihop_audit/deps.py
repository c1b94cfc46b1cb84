"""Typed FastAPI dependencies of audit: the runtime and the calling agency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security

from phoihop_audit.access import Caller
from phoihop_audit.runtime import Runtime
from phoihop_common.errors import api_key_header, unauthorized

__all__ = ["CallerDep", "RuntimeDep", "caller", "runtime"]


def runtime(request: Request) -> Runtime:
    """The app's shared runtime."""
    rt: Runtime = request.app.state.rt
    return rt


def caller(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Caller:
    """The agency presenting `X-API-Key`; 401 `missing_api_key` or `invalid_api_key`."""
    rt = runtime(request)
    agency = rt.api_keys.agency_for(key)
    if agency is None:
        raise unauthorized(key)
    return Caller(agency=agency)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CallerDep = Annotated[Caller, Depends(caller)]
