"""Bounded shutdown steps: a step that hangs, even one that ignores its cancellation, is left."""

from __future__ import annotations

import asyncio
import time

from phoihop_common.shutdown import bounded, cancel_all


async def _stubborn(release: asyncio.Event) -> None:
    """Ignores cancellation until released (like a client stuck in a close handshake)."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_step_that_ignores_cancellation_does_not_hold_the_stop() -> None:
    release = asyncio.Event()
    started = time.monotonic()
    assert await bounded("stubborn", _stubborn(release), seconds=0.2) is False
    assert time.monotonic() - started < 2.0
    release.set()


async def test_a_step_that_ends_or_fails_in_time_is_done() -> None:
    async def boom() -> None:
        raise OSError("connection reset")

    assert await bounded("quick", asyncio.sleep(0.01), seconds=1.0) is True
    assert await bounded("failing", boom(), seconds=1.0) is True


async def test_cancel_all_waits_for_tasks_that_end_on_cancellation() -> None:
    ended: list[str] = []

    async def loop(name: str) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append(name)

    tasks = [asyncio.create_task(loop(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    assert await cancel_all("loops", tasks, seconds=1.0) is True
    assert sorted(ended) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)
