"""Asks audit for a recommendation's current status, as the calling agency."""

from __future__ import annotations

from typing import Any

import httpx

from phoihop_common.auth import API_KEY_HEADER
from phoihop_ingest.exceptions import AuditUnavailableError, NotFoundError


class AuditClient:
    """HTTP client of audit's status endpoint."""

    def __init__(self, *, base_url: str, timeout: float) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def status(self, *, recommendation_id: str, api_key: str) -> dict[str, Any]:
        """Current status (`{id, status, agency, ...}`) seen with the caller's own key."""
        try:
            # Who may respond needs the assignee, never the reporter (whose reads are logged).
            resp = await self.client.get(
                f"/v1/recommendations/{recommendation_id}",
                headers={API_KEY_HEADER: api_key},
                params={"reporter": "false"},
            )
        except httpx.HTTPError as exc:
            detail = str(exc)[:300] or type(exc).__name__
            raise AuditUnavailableError("audit_unavailable", detail) from exc
        if resp.status_code == 404:
            raise NotFoundError("unknown_recommendation", recommendation_id)
        if resp.status_code != 200:
            raise AuditUnavailableError("audit_unavailable", f"audit answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise AuditUnavailableError("audit_unavailable", "audit answered invalid JSON") from exc
        if not isinstance(body, dict):
            raise AuditUnavailableError("audit_unavailable", "audit answered an unexpected body")
        return body

    async def close(self) -> None:
        """Close connections."""
        await self.client.aclose()
