"""`RoutingStream.take_ready` under `agent.test_context()`: batches start with their first
record and end when full or `within` after it; an idle agent does not wake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import pytest

from phoihop_routing.streams import RoutingStream


@dataclass
class Harness:
    """A faust app (memory broker) whose one agent records its batches."""

    agent: Any
    batches: list[list[int]] = field(default_factory=list)


def harness(tmp_path: Path, *, max_: int, within: float) -> Harness:
    app = faust.App(
        "streams-test", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path),
        Stream=RoutingStream,
    )  # fmt: skip
    h = Harness(agent=None)

    @app.agent()
    async def agent(stream: Any) -> Any:
        async for events in stream.take_ready(max_, within):
            h.batches.append([e.value for e in events])
            yield len(events)

    app.finalize()
    h.agent = agent
    return h


async def test_a_full_batch_goes_at_once_whatever_within(tmp_path: Path) -> None:
    h = harness(tmp_path, max_=3, within=3600.0)
    async with h.agent.test_context() as ctx:
        await ctx.put(1, wait=False)
        await ctx.put(2, wait=False)
        await asyncio.wait_for(ctx.put(3), timeout=30)  # an hour's linger would hang here
    assert h.batches == [[1, 2, 3]]


async def test_a_lone_record_is_taken_without_a_linger(tmp_path: Path) -> None:
    """`within=0`: faust's `take_events` would wait for ever; `take_ready` takes it at once."""
    h = harness(tmp_path, max_=500, within=0)
    async with h.agent.test_context() as ctx:
        await asyncio.wait_for(ctx.put(7), timeout=30)
        await asyncio.wait_for(ctx.put(8), timeout=30)
    assert h.batches == [[7], [8]]


async def test_an_idle_agent_does_not_wake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness(tmp_path, max_=500, within=0.001)
    waits: list[float] = []
    original = RoutingStream.wait_for_stopped

    async def counted(self: RoutingStream, *args: Any, **kwargs: Any) -> Any:
        waits.append(asyncio.get_running_loop().time())
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(RoutingStream, "wait_for_stopped", counted)
    async with h.agent.test_context() as ctx:
        await asyncio.wait_for(ctx.put(1), timeout=30)
        before = len(waits)
        await asyncio.sleep(0.5)  # 500 linger periods with nothing to take
        idle_waits = len(waits) - before
        await asyncio.wait_for(ctx.put(2), timeout=30)
    assert h.batches == [[1], [2]]
    # one wait for the next first record (faust's take_events would wake ~500 times)
    assert idle_waits <= 1
