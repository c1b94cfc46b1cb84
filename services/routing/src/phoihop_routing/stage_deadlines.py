"""Deadlines: which local cases have a reminder or escalation due, and the `tick`s for them.

`DeadlineScan.scan_due` (run by a faust timer) reads the local `cases` of the active
partitions through an in-memory index (next due instant per case, rebuilt from the table
after each rebalance: `rebuild`) and sends `internal.TickMessage`s to ROUTING_TIMERS; the
state change happens in stage 3 (`stage_cases`), the only place faust allows table writes,
which re-checks the deadline there and calls `index` with each state it writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from phoihop_routing.internal import TickMessage
from phoihop_routing.lifecycle import CaseState, Policy, next_due
from phoihop_routing.stage_base import Plumbing
from phoihop_schemas.topics import ROUTING_TIMERS


class DeadlineScan:
    """The index of the local cases' next deadlines, and the scan that sends their ticks."""

    def __init__(
        self,
        plumbing: Plumbing,
        *,
        policy: Policy,
        cases: MutableMapping[str, Any],
        clock: Callable[[], datetime],
    ) -> None:
        self.plumbing = plumbing
        self.policy = policy
        self.cases = cases  # rec id -> CaseState dict (read only here)
        self.clock = clock
        self.due_index: dict[str, datetime] = {}
        self.partitions_of: dict[str, int] = {}
        self.open_ids: set[str] = set()
        self.tick_sent: dict[str, float] = {}
        self.generation: int | None = None  # of the consumer group when the index was built

    def index(self, state: CaseState) -> None:
        """Take a case's new state into the index (its next deadline, open or not)."""
        rec_id = state.recommendation_id
        self.tick_sent.pop(rec_id, None)
        due = next_due(state, policy=self.policy)
        if due is None:
            self.due_index.pop(rec_id, None)
        else:
            self.due_index[rec_id] = due
        if state.partition is not None:
            self.partitions_of[rec_id] = state.partition
        if state.is_open:
            self.open_ids.add(rec_id)
        else:
            self.open_ids.discard(rec_id)
        self.plumbing.metrics.open_cases.set(len(self.open_ids))

    def rebuild(self, *, active_partitions: Iterable[int], generation: int | None) -> None:
        """Re-read the local `cases` of the active partitions (after a rebalance)."""
        active = set(active_partitions)
        self.due_index.clear()
        self.partitions_of.clear()
        self.open_ids.clear()
        self.tick_sent.clear()
        for _key, raw in list(self.cases.items()):
            if not raw:
                continue
            state = CaseState.from_dict(raw)
            if state.partition is None or state.partition in active:
                self.index(state)
        self.plumbing.metrics.open_cases.set(len(self.open_ids))
        self.generation = generation

    async def scan_due(self, *, resend_after: float = 10.0) -> int:
        """Send a `tick` for every local case with a reminder or escalation due; count them."""
        now = self.clock()
        mono = time.monotonic()
        sent = 0
        for rec_id, due in list(self.due_index.items()):
            if due > now:
                continue
            last = self.tick_sent.get(rec_id)
            if last is not None and mono - last < resend_after:
                continue
            await self.plumbing.send_internal(
                topic=ROUTING_TIMERS.name,
                key=rec_id,
                message=TickMessage(recommendation_id=rec_id, due=due),
            )
            self.tick_sent[rec_id] = mono
            sent += 1
        return sent
