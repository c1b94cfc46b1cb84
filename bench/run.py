"""The benchmark run: ceiling, ingest, latency ladder, profile, memory; table and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bounds
from bench.ceiling import CeilingPhases
from bench.config import FULL, OPTIONAL_PHASES, PHASES, QUICK, RESULTS_DIR, Sizes
from bench.goals import evaluate_goals
from bench.scale import ScalePhases
from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_embedded.broker import EmbeddedBroker

# The run is put together from bench.config (phases, sizes, goals), bench.base (state and
# plumbing), bench.ceiling and bench.phases (the phases) and bench.goals; `python -m bench`
# imports these names from here.
__all__ = ["FULL", "OPTIONAL_PHASES", "PHASES", "QUICK", "Bench", "Sizes", "write"]


class Bench(CeilingPhases, ScalePhases):
    """One benchmark run."""

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Every selected phase; whatever fails is recorded and the rest still runs."""
        try:
            self.broker = EmbeddedBroker(log_path=self.tmp / "broker.log").start()
            asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=self.broker.bootstrap)))
            self._step("ceiling.kafka", lambda: asyncio.run(self.kafka_ceiling()))
            self._step("ceiling.floor", lambda: asyncio.run(self.durable_floor()))
            self._step("ceiling.faust", lambda: asyncio.run(self.faust_ceiling()))
            self._step("ceiling.http", self.minimal_ceiling)
            self._step(
                "ceiling.bounds",
                lambda: bounds.measure(tmp=self.tmp, records=self.sizes.kafka_records),
            )
            if "ingest_alone" in self.phases:
                self._step("ingest_alone", self.ingest_alone_phase)
            if any(p in self.phases for p in ("ingest", "e2e", "memory", "profile", "burst")):
                self._step("stack", self.start_stack)
            if self.stack is not None:
                self.results["rss_after_start_mb"] = self.rss()
                if "ingest" in self.phases:
                    self._step("ingest", self.ingest_phase)
                if "profile" in self.phases:
                    self._step("profile", self.profile_phase)
                if "e2e" in self.phases:
                    self._step("e2e", self.e2e_phase)
                if "burst" in self.phases:
                    self._step("burst", self.burst_phase)
                if "memory" in self.phases:
                    self._step("memory", self.memory_phase)
                self.results["rss_end_mb"] = self.rss()
            if "scale" in self.phases:  # last: it stops the shared stack, starts its own
                self._step("scale", self.scale_phase)
        finally:
            self.stop()
        self.results["finished_at"] = datetime.now(UTC).isoformat()
        self.results["goals"] = self.goals()
        return self.results

    def _step(self, name: str, fn: Callable[[], Any]) -> None:
        print(f"bench: {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # a failing phase is reported, the others still run
            self.results["errors"].append({"phase": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"bench: {name} failed: {type(exc).__name__}: {exc}", flush=True)
            return
        finally:
            print(f"bench: {name} took {time.monotonic() - t0:.1f}s", flush=True)
        if value is not None:
            target = self.results
            *parents, leaf = name.split(".")
            for p in parents:
                target = target.setdefault(p, {})
            target[leaf] = value

    def stop(self) -> None:
        """Stop everything the run started."""
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.stack.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.results["errors"]:
            self.results["logs"] = str(self.tmp)  # kept for reading
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def goals(self) -> list[dict[str, Any]]:
        """The issue's goals beside the figures: met / missed / not measured, never asserted."""
        return evaluate_goals(self.results, self.sizes)


def write(results: dict[str, Any]) -> Path:
    """`bench/results/<timestamp>.json` and `latest.json`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    text = json.dumps(results, ensure_ascii=False, indent=2, default=str)
    path.write_text(text, encoding="utf-8")
    (RESULTS_DIR / "latest.json").write_text(text, encoding="utf-8")
    return path
