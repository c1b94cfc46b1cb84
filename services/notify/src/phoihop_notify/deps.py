"""The dependencies of notify's routes: the running service and the calling agency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security

from phoihop_common.errors import api_key_header, unauthorized
from phoihop_notify.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The running service."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_agency(
    runtime: RuntimeDep, key: Annotated[str | None, Security(api_key_header)]
) -> str:
    """The agency owning the presented API key; 401 `missing_api_key` or `invalid_api_key`."""
    agency = runtime.api_keys.agency_for(key)
    if agency is None:
        raise unauthorized(key)
    return agency


AgencyDep = Annotated[str, Depends(current_agency)]

__all__ = ["AgencyDep", "RuntimeDep", "current_agency", "get_runtime"]
