"""Subprocesses the benchmark owns (webhook receiver, minimal endpoint) and CPU windows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bench import procs

ROOT = Path(__file__).resolve().parents[1]
ASSIGNING_TYPES = (".assigned.v1", ".merged.v1")


@dataclass
class Receipt:
    """One webhook request as the receiver process logged it."""

    at: float
    status: int
    path: str
    webhook_id: str
    type: str
    subject: str
    event_id: str


@dataclass
class ReceiverProcess:
    """`python -m bench.receiver` as a child; reads its log incrementally."""

    out_path: Path
    process: subprocess.Popen[str] | None = None
    port: int = 0
    first_done: dict[str, float] = field(default_factory=dict)  # subject -> first 2xx receipt
    count: int = 0
    _offset: int = 0
    _partial: str = ""

    def start(self) -> ReceiverProcess:
        """Start it and read the port it listens on."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", "--out", str(self.out_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().strip())
        return self

    def url(self, path: str) -> str:
        """URL of a path on the receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int:
        """Process id."""
        assert self.process is not None
        return self.process.pid

    def poll(self) -> list[Receipt]:
        """New receipts since the last call; updates `first_done`."""
        if not self.out_path.exists():
            return []
        with self.out_path.open("r", encoding="utf-8") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        new: list[Receipt] = []
        for line in lines:
            parts = line.split("\t")
            if len(parts) != 7:
                continue
            r = Receipt(float(parts[0]), int(parts[1]), *parts[2:])
            new.append(r)
            if 200 <= r.status < 300 and r.type.endswith(ASSIGNING_TYPES):
                self.first_done.setdefault(r.subject, r.at)
        self.count += len(new)
        return new

    def stop(self) -> None:
        """Close its stdin (it exits), then make sure."""
        if self.process is None or self.process.poll() is not None:
            return
        stdin: IO[str] | None = self.process.stdin
        if stdin:
            stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class MinimalEndpoint:
    """`python -m bench.minimal_app` as a child."""

    port: int
    bootstrap: str
    topic: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> MinimalEndpoint:
        """Start uvicorn and wait for /readyz."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "bench.minimal_app", "--port", str(self.port),
                "--bootstrap", self.bootstrap, "--topic", self.topic,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"minimal endpoint exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"minimal endpoint not ready after {timeout}s")

    def stop(self) -> None:
        """Terminate it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class CpuWindow:
    """CPU seconds each watched process used between `start` and `stop`."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    def start(self) -> CpuWindow:
        """Take the first snapshot."""
        self._t0 = time.monotonic()
        self._start = {n: self._cpu(n, p) for n, p in self.pids.items()}
        return self

    @staticmethod
    def _cpu(name: str, pid: int) -> float:
        # The benchmark's own process is the parent of everything: count it alone.
        return procs.cpu_seconds(pid, descendants=name != "bench")

    def stop(self) -> dict[str, Any]:
        """Per process: CPU seconds and share of one core over the window."""
        wall = max(time.monotonic() - self._t0, 1e-6)
        out: dict[str, Any] = {"wall_s": round(wall, 2), "processes": {}}
        for name, pid in self.pids.items():
            used = max(self._cpu(name, pid) - self._start.get(name, 0.0), 0.0)
            out["processes"][name] = {"cpu_s": round(used, 2), "core_share": round(used / wall, 3)}
        out["loadavg"] = os.getloadavg()
        return out


def bound_by(cpu: dict[str, Any], *, cores: int) -> str:
    """What the CPU figures say bounds a phase."""
    rows = sorted(cpu["processes"].items(), key=lambda kv: kv[1]["core_share"], reverse=True)
    if not rows:
        return "no CPU data"
    total = sum(v["core_share"] for _, v in rows)
    name, top = rows[0]
    top_share = top["core_share"]
    others = ", ".join(f"{n} {v['core_share']:.0%}" for n, v in rows[1:4])
    load = cpu.get("loadavg", (0, 0, 0))[0]
    if top_share >= 0.85:
        return (
            f"{name} is CPU-bound: {top_share:.0%} of one core (one Python event loop, GIL); "
            f"next: {others}"
        )
    if total >= 0.85 * cores or load >= cores:
        return (
            f"the machine's {cores} cores are saturated: these processes use {total:.0%} of one "
            f"core in total (top {name} {top_share:.0%}; {others}), load average {load:.1f} "
            f"(other users of the shared machine included)"
        )
    return (
        f"no process is CPU-bound (top {name} {top_share:.0%}, {others}; load {load:.1f}): "
        "time goes to waiting — broker round trips with acks=all, batching and commit "
        "intervals, webhook HTTP round trips"
    )
