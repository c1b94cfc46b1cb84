"""Phase `scale` (issue 13): one offered rate with 1 and then 2 processes of routing, notify
and audit; delivered rate, latency and CPU per recommendation (replicas summed) side by side.

Each worker count gets a stack of its own on the run's broker (the previous one stopped):
on 2 cores the point is that the rate does not drop and what the extra processes cost.
"""

from __future__ import annotations

import time
from typing import Any

from bench import ladder
from bench.bus import NOTIFY_ENV
from bench.helpers import ReceiverProcess
from bench.phases import StackPhases
from bench.replicas import compare
from phoihop_embedded.stack import Stack

SCALED = ("routing", "notify", "audit")


class ScalePhases(StackPhases):
    """Phase `scale`."""

    def scale_phase(self) -> dict[str, Any]:
        """The same open-loop rate on a 1-worker and on a 2-worker stack."""
        assert self.broker is not None
        s = self.sizes
        if self.receiver is None:
            self.receiver = ReceiverProcess(self.tmp / "webhooks.tsv").start()
        runs: list[dict[str, Any]] = []
        for workers in s.scale_workers:
            runs.append(self._scale_run(workers))
            print(f"bench: scale {workers} worker(s): {ladder.one_line(runs[-1])}", flush=True)
        return {
            "rate_per_s": s.scale_rate,
            "seconds": s.scale_seconds,
            "scaled_services": list(SCALED),
            "runs": runs,
            "comparison": compare(runs),
        }

    def _scale_run(self, workers: int) -> dict[str, Any]:
        assert self.broker is not None
        assert self.receiver is not None
        s = self.sizes
        previous, self.stack = self.stack, None
        if previous is not None:  # the other phases' stack: not competing for the cores
            previous.stop()
        stack = Stack(
            data_dir=self.tmp / f"scale-{workers}",
            kafka_bootstrap=self.broker.bootstrap,
            database_url=self.database_url,
            config_dir=self.webhook_config(self.tmp / f"scale-{workers}-config"),
            extra_env=dict(NOTIFY_ENV),
            replicas=dict.fromkeys(SCALED, workers),
        )
        t0 = time.monotonic()
        stack.start(timeout=180)
        self.stack = stack
        try:
            started = round(time.monotonic() - t0, 1)
            drained = self.quiesce(timeout=s.drain_timeout)  # groups settled, backlog done
            self.measured_run(s.scale_rate, 3.0)  # lazy set-up, last rebalances: not measured
            idle = self.idle_cpu()
            step = self.measured_run(s.scale_rate, s.scale_seconds, idle=idle)
        finally:
            stack.stop()
            self.stack = None
        step["verdict"] = ladder.verdict(step, stop_p99_ms=s.stop_p99_ms)
        return {"workers": workers, "stack_start_s": started, "drained_before": drained} | step
