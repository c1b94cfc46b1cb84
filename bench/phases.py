"""The phases on the whole stack: ingest, the latency ladder, the profile, burst, memory."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ladder, load, procs
from bench.base import BenchBase
from bench.bus import (
    NOTIFY_ENV,
    SUBMITTER,
    SUPERVISOR,
    copy_config,
    key,
    metric_sum,
    new_secret,
    scrape,
)
from bench.config import PROFILE_SAMPLE_RATE, RESULTS_DIR
from bench.helpers import CpuWindow, ReceiverProcess
from bench.profile import PySpy, cpu_per_rec, end_offsets, read_speedscope, records_per_rec
from bench.replicas import fold_replicas
from phoihop_embedded.stack import SERVICES, Stack


class StackPhases(BenchBase):
    """Phases `ingest`, `e2e`, `profile`, `burst` and `memory`, on the four services."""

    def start_stack(self) -> None:
        """Receiver process, config with a jurisdiction-wide subscription, the four services."""
        assert self.broker is not None
        self.receiver = ReceiverProcess(self.tmp / "webhooks.tsv").start()
        config = self.webhook_config(self.tmp / "config")
        self.stack = Stack(
            data_dir=self.tmp / "stack",
            kafka_bootstrap=self.broker.bootstrap,
            database_url=self.database_url,
            config_dir=config,
            extra_env=dict(NOTIFY_ENV),
        )
        t0 = time.monotonic()
        self.stack.start(timeout=180)
        self.results["stack_start_s"] = round(time.monotonic() - t0, 1)

    def webhook_config(self, target: Path) -> Path:
        """A config copy with one jurisdiction-wide subscription: routing outcomes -> receiver."""
        assert self.receiver is not None
        sub = {
            "agency": SUPERVISOR,
            "url": self.receiver.url(f"/hook/{SUPERVISOR}"),
            "secret": new_secret(),
            "event_types": ["assigned", "merged"],
            "scope": "jurisdiction",
        }
        return copy_config(target, [sub])

    def ingest_phase(self) -> dict[str, Any]:
        """Single submissions under the client load, then the bulk endpoint."""
        assert self.stack is not None
        url = self.stack.url("ingest")
        window = CpuWindow(self.pids()).start()
        single = asyncio.run(self.http_load(f"{url}/v1/recommendations", key(SUBMITTER)))
        single["cpu"] = window.stop()
        self.quiesce(timeout=self.sizes.drain_timeout)
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(self.sizes.bulk_rows))
        bulk_out = {k: v for k, v in bulk.items() if k != "submitted"}
        bulk_out["cpu"] = window.stop()
        self.quiesce(timeout=self.sizes.drain_timeout)
        return {"single": single, "bulk": bulk_out}

    def measured_run(
        self,
        rate: float,
        seconds: float,
        *,
        spies: dict[str, PySpy] | None = None,
        idle: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One open-loop run on a drained bus: latency, CPU and broker records per recommendation.

        The generator and the receiver run in their own processes. CPU is counted from the
        first request until the last webhook and audit record (or, when delivery did not
        finish in time, until the bus drained); broker records once the bus is quiet again.
        Profilers in `spies` start when the generator's clock does.
        """
        assert self.stack is not None
        assert self.broker is not None
        assert self.receiver is not None
        s = self.sizes
        before = asyncio.run(end_offsets(self.broker.bootstrap))
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        proc = self.generator(
            f"{self.stack.url('ingest')}/v1/recommendations", key(SUBMITTER)["X-API-Key"],
            rate, seconds,
        ).start()  # fmt: skip
        profilers: dict[str, Any] = {}
        try:
            proc.sending()
            for spy in (spies or {}).values():
                spy.start()
            run = proc.wait()
            profilers = {name: spy.wait() for name, spy in (spies or {}).items()}
        finally:
            proc.stop()
            for spy in (spies or {}).values():
                spy.stop()
        done = self.wait_done(run.submitted, audit_base=base, timeout=4 * seconds + 30)
        cpu = None if not done["complete"] else window.stop()
        drained = self.quiesce(timeout=s.drain_timeout)
        receipts = dict(done["receipts"])
        if cpu is None:  # fell behind: count the work until it drained, and late receipts too
            cpu = window.stop()
            receipts.update(
                {
                    i: self.receiver.first_done[i]
                    for i in run.submitted
                    if i in self.receiver.first_done
                }
            )
        after = asyncio.run(end_offsets(self.broker.bootstrap))
        out = ladder.step_figures(
            rate=rate, seconds=seconds, submitted=run.submitted, receipts=receipts,
            generator=run.summary,
        )  # fmt: skip
        out["delivered_in_time"] = done["delivered"]
        out["audit_stored"] = done["audit_stored"]
        out["drained_after"] = drained
        out["cpu_ms_per_rec"] = cpu_per_rec(  # a service's replicas (`routing#2`) summed
            fold_replicas(cpu),
            len(run.submitted),
            SERVICES,
            idle=fold_replicas(idle) if idle else None,
        )
        out["broker_records"] = records_per_rec(before, after, len(run.submitted))
        out["cpu"] = cpu
        out["generator"] = run.summary
        if profilers:
            out["profilers"] = profilers
        return out

    def e2e_phase(self) -> dict[str, Any]:
        """The latency ladder: each offered rate for a fixed window, until p99 or delivery fails."""
        assert self.stack is not None
        s = self.sizes
        out: dict[str, Any] = {"rates": list(s.ladder_rates), "step_s": s.ladder_seconds}
        # the ingest phase leaves a backlog downstream: measure the bus, not that backlog
        out["drained_before"] = self.quiesce(timeout=s.drain_timeout)
        # first requests pay for lazy set-up (connections, caches): not part of any step
        self.measured_run(min(s.ladder_rates), 3.0)
        out["idle_cpu"] = idle = self.idle_cpu()
        steps: list[dict[str, Any]] = []
        for rate in s.ladder_rates:
            step = self.measured_run(rate, s.ladder_seconds, idle=idle)
            step["verdict"] = ladder.verdict(step, stop_p99_ms=s.stop_p99_ms)
            steps.append(step)
            print(f"bench: e2e {ladder.one_line(step)}", flush=True)
            if step["verdict"] in ladder.STOPS:
                break
        out["steps"] = steps
        out["knee"] = ladder.knee(steps)
        return out

    def burst_phase(self) -> dict[str, Any]:
        """Saturation by bulk import: as fast as ingest takes it (a burst, not a steady rate)."""
        s = self.sizes
        self.quiesce(timeout=s.drain_timeout)
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(s.saturation_rows))
        submitted = bulk.pop("submitted")
        done = self.wait_done(submitted, audit_base=base, timeout=s.drain_timeout)
        out = self._e2e_figures(submitted, done) | {
            "offered": "bulk import as fast as ingest takes it",
            "bulk": bulk,
            "cpu": window.stop(),
        }
        self.quiesce(timeout=s.drain_timeout)
        return out

    def profile_phase(self) -> dict[str, Any]:
        """py-spy of every service at a steady open-loop rate; CPU and records per rec."""
        assert self.stack is not None
        s = self.sizes
        self.quiesce(timeout=s.drain_timeout)
        warm = self.measured_run(s.profile_rate, 3.0)  # first requests, lazy imports: not profiled
        idle = self.idle_cpu()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        spies: dict[str, PySpy] = {}
        for name in SERVICES:
            proc = self.stack.procs[name].process
            if proc is not None:
                spies[name] = PySpy(
                    pid=proc.pid, out_path=RESULTS_DIR / f"profile-{name}-{stamp}.json",
                    duration=s.profile_seconds, rate=PROFILE_SAMPLE_RATE,
                    log_path=self.tmp / f"py-spy-{name}.log",
                    subprocesses=len(procs.tree(proc.pid)) > 1,
                )  # fmt: skip
        # one more second of load than of profile, so every sample is under load
        step = self.measured_run(s.profile_rate, s.profile_seconds + 1, spies=spies, idle=idle)
        services: dict[str, Any] = {}
        for name, result in step.pop("profilers", {}).items():
            entry: dict[str, Any] = {"cpu_ms_per_rec": step["cpu_ms_per_rec"].get(name)}
            if result.get("ok"):
                summary = read_speedscope(Path(result["path"]))
                entry |= {
                    "speedscope": _relative(result["path"]),
                    "sampled_s": round(summary.sampled_s, 2),
                    "sampled_core_share": round(summary.sampled_s / s.profile_seconds, 3),
                    "py_spy_cpu_s": result.get("py_spy_cpu_s"),
                    "threads": summary.threads,
                    "waiting_share": round(summary.waiting_share, 3),
                    "top_own": summary.top(10),
                    "top_packages": summary.top_packages(8),
                    "top_first_party_inclusive": summary.top_inclusive(6),
                }
            else:
                entry["error"] = result.get("error")
                print(f"bench: py-spy {name}: {result.get('error')}", flush=True)
            services[name] = entry
        return {
            "rate_per_s": s.profile_rate,
            "profile_s": s.profile_seconds,
            "sample_rate_hz": PROFILE_SAMPLE_RATE,
            "warm_up": {"submitted_ok": warm["submitted_ok"], "p99_ms": warm["p99_ms"]},
            "idle_cpu": idle,
            "run": step,
            "services": services,
            "note": "latency here is under four py-spy samplers on the same cores; "
            "use the ladder for latency",
        }

    @staticmethod
    def _e2e_figures(submitted: dict[str, float], done: dict[str, Any]) -> dict[str, Any]:
        receipts: dict[str, float] = done["receipts"]
        lat = [receipts[i] - t for i, t in submitted.items() if i in receipts]
        out: dict[str, Any] = {
            "submitted_ok": len(submitted),
            "webhook_delivered": done["delivered"],
            "audit_stored": done["audit_stored"],
            "complete": done["complete"],
            **load.latency_summary(lat),
        }
        if receipts and submitted:
            first = min(submitted.values())
            ends = [max(receipts.values())]
            if done["audit_reached_at"]:
                ends.append(done["audit_reached_at"])
            span = max(ends) - first
            out["throughput_per_s"] = round(len(receipts) / span, 1) if span > 0 else None
            times = sorted(receipts.values())
            lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
            steady = (len(times) * 9) // 10 - len(times) // 10
            out["sustained_per_s"] = round(steady / (hi - lo), 1) if hi > lo else None
            out["webhooks_done_after_s"] = round(max(receipts.values()) - first, 1)
            if done["audit_reached_at"]:
                out["audit_done_after_s"] = round(done["audit_reached_at"] - first, 1)
        return out

    def memory_phase(self) -> dict[str, Any]:
        """Load N open cases by bulk import, then peak/current RSS of every service."""
        assert self.stack is not None
        s = self.sizes
        before = self.rss()
        base = self.audit_done()
        window = CpuWindow(self.pids()).start()
        bulk = asyncio.run(self.bulk_load(s.open_cases))
        submitted = bulk.pop("submitted")
        done = self.wait_done(submitted, audit_base=base, timeout=s.drain_timeout)
        cpu = window.stop()
        routing_metrics = scrape(self.stack.url("routing"))
        audit_metrics = scrape(self.stack.url("audit"))
        return {
            "open_cases_loaded": len(submitted),
            "webhook_delivered": done["delivered"],
            "audit_stored": done["audit_stored"],
            "complete": done["complete"],
            "routing_open_cases_gauge": metric_sum(routing_metrics, "phoihop_routing_open_cases"),
            "audit_open_gauge": metric_sum(audit_metrics, "phoihop_audit_recommendations_open"),
            "bulk": bulk,
            "rss_before_mb": before,
            "rss_after_mb": self.rss(),
            "cpu": cpu,
        }


def _relative(path: str) -> str:
    """A path relative to the repository when it is inside it."""
    p = Path(path)
    root = RESULTS_DIR.parents[1]
    return str(p.relative_to(root)) if p.is_relative_to(root) else path
