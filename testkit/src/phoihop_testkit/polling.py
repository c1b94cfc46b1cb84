"""Waiting for a condition in the cross-service tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(
    fn: Callable[[], Any],
    *,
    timeout: float,
    what: str = "condition",
    every: float = 0.3,
    detail: Callable[[], str] | None = None,
) -> Any:
    """`fn()`'s first truthy result within `timeout` s; AssertionError naming `what` if none."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(
        f"timed out waiting for {what}; {detail() if detail is not None else f'last={last!r}'}"
    )
