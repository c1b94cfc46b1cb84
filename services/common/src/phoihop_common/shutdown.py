"""Bounded shutdown: each step of a stop ends within its time and says when it was slow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable

from phoihop_common.logs import get_logger

log = get_logger(__name__)
SLOW_STEP_S = 2.0  # a step slower than this is logged with its name


async def bounded(step: str, work: Awaitable[object], *, seconds: float) -> bool:
    """Await `work` for at most `seconds`; on timeout cancel it and go on. True when it ended.

    Unlike `asyncio.wait_for`, a step that ignores its cancellation cannot hold the caller:
    the task is cancelled and left behind, so a stop never outlasts the sum of its bounds.
    """
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    took = round(time.monotonic() - started, 2)
    if not done:
        task.cancel()
        log.warning("shutdown_step_timeout", step=step, seconds=seconds)
        return False
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("shutdown_step_failed", step=step, error=repr(exc), took_s=took)
    elif took > SLOW_STEP_S:
        log.info("shutdown_step_slow", step=step, took_s=took)
    return True


async def cancel_all(step: str, tasks: Iterable[asyncio.Task[object]], *, seconds: float) -> bool:
    """Cancel the tasks and wait (bounded) until they have ended."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return True
    return await bounded(step, asyncio.gather(*pending, return_exceptions=True), seconds=seconds)
