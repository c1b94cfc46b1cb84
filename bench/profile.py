"""Where time and records go: py-spy recordings, speedscope top frames, broker end offsets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from phoihop_common.kafka import KafkaSettings, client_kwargs
from phoihop_schemas.topics import ALL_TOPICS, CANONICAL, Role

_VENV_PY_SPY = Path(sys.executable).parent / "py-spy"
PY_SPY = str(_VENV_PY_SPY) if _VENV_PY_SPY.exists() else (shutil.which("py-spy") or "py-spy")
_SITE = re.compile(r".*/(?:site|dist)-packages/")
_SRC = re.compile(r".*/(?:services/\w+|schemas)/src/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")
# Leaf frames that are a thread waiting or polling rather than working: py-spy counts a
# thread that is runnable (state R) as active, so on a busy machine these still collect
# samples (an epoll_wait that returns at once, a pool worker woken for its queue).
WAIT_FRAMES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "Queue.get (queue.py)",
    }
)
FIRST_PARTY = ("phoihop_",)


# ---------------------------------------------------------------------- py-spy


@dataclass
class PySpy:
    """`py-spy record --format speedscope` attached to one process for a fixed duration."""

    pid: int
    out_path: Path
    duration: int
    rate: int = 100
    log_path: Path | None = None
    subprocesses: bool = False
    process: subprocess.Popen[bytes] | None = None
    failed: str | None = None

    def command(self) -> list[str]:
        """The py-spy command line (`--subprocesses` when the service has children)."""
        return [
            PY_SPY, "record", "--format", "speedscope", "-o", str(self.out_path),
            "--pid", str(self.pid), "--duration", str(self.duration), "--rate", str(self.rate),
            "--nonblocking", *(["--subprocesses"] if self.subprocesses else []),
        ]  # fmt: skip

    def start(self) -> PySpy:
        """Start recording (returns at once)."""
        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:  # not installed: the run goes on without a profile
            self.failed = f"cannot run py-spy ({PY_SPY}): {exc}"
        return self

    def wait(self) -> dict[str, Any]:
        """Wait for py-spy to finish; where the file is, or why there is none."""
        if self.process is None:
            return {"ok": False, "error": self.failed or "not started"}
        rc, cpu_s = self._reap(deadline=time.monotonic() + self.duration + 60)
        own = {"py_spy_cpu_s": round(cpu_s, 2)} if cpu_s is not None else {}
        if rc == 0 and self.out_path.exists():
            return {"ok": True, "path": str(self.out_path), **own}
        why = ""
        if self.log_path and self.log_path.exists():
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            errors = [x for x in lines if x.startswith("Error")]
            why = " | ".join(errors[:2] or lines[-3:])
        return {
            "ok": False,
            "error": f"py-spy exited with {rc}: {why or 'no output'} (py-spy attaches with "
            "ptrace: run as root, with CAP_SYS_PTRACE, or with kernel.yama.ptrace_scope=0)",
        }

    def _reap(self, *, deadline: float) -> tuple[int, float | None]:
        """Wait for py-spy (killed past `deadline`): exit code and the CPU it used itself."""
        assert self.process is not None
        while True:
            try:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            except ChildProcessError:  # already reaped elsewhere
                return self.process.wait(), None
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                return self.process.returncode, usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                self.process.kill()
            time.sleep(0.1)

    def stop(self) -> None:
        """Make sure it is gone (teardown)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ---------------------------------------------------------------------- speedscope


def short_file(path: str) -> str:
    """A frame's file without the install prefix (site-packages, services' src, stdlib)."""
    for pattern in (_SITE, _SRC, _STDLIB):
        m = pattern.match(path)
        if m:
            return path[m.end() :]
    return path


def package_of(path: str) -> str:
    """Top-level package a frame's file belongs to (`<stdlib>` for the standard library)."""
    if _SITE.match(path) or _SRC.match(path):
        top = short_file(path).split("/", 1)[0]
        return top.removesuffix(".py")
    if _STDLIB.match(path):
        rest = short_file(path)
        return "asyncio" if rest.startswith("asyncio/") else "<stdlib>"
    return "<other>"


@dataclass
class ProfileSummary:
    """Own time (seconds of samples) per function and per package of one speedscope file."""

    sampled_s: float = 0.0
    samples: int = 0
    threads: int = 0
    own: dict[str, float] = field(default_factory=dict)  # "func (file)" -> seconds
    packages: dict[str, float] = field(default_factory=dict)
    inclusive: dict[str, float] = field(default_factory=dict)  # first-party functions only

    def top(self, n: int = 10) -> list[dict[str, Any]]:
        """The `n` functions with the most own time, with their share of all samples."""
        total = self.sampled_s or 1.0
        ranked = sorted(self.own.items(), key=lambda kv: kv[1], reverse=True)[:n]
        return [
            {"function": k, "own_s": round(v, 3), "share": round(v / total, 3)}
            | ({"wait": True} if k in WAIT_FRAMES else {})
            for k, v in ranked
        ]

    def top_inclusive(self, n: int = 5) -> list[dict[str, Any]]:
        """First-party (phoihop_*) functions by time spent in them and below them."""
        total = self.sampled_s or 1.0
        ranked = sorted(self.inclusive.items(), key=lambda kv: kv[1], reverse=True)[:n]
        return [
            {"function": k, "total_s": round(v, 3), "share": round(v / total, 3)} for k, v in ranked
        ]

    @property
    def waiting_share(self) -> float:
        """Share of samples whose leaf is a wait/poll frame (see WAIT_FRAMES)."""
        waiting = sum(v for k, v in self.own.items() if k in WAIT_FRAMES)
        return waiting / self.sampled_s if self.sampled_s else 0.0

    def top_packages(self, n: int = 8) -> list[dict[str, Any]]:
        """Packages by own time (where a frame at the top of the stack lives)."""
        total = self.sampled_s or 1.0
        ranked = sorted(self.packages.items(), key=lambda kv: kv[1], reverse=True)[:n]
        return [
            {"package": k, "own_s": round(v, 3), "share": round(v / total, 3)} for k, v in ranked
        ]


def summarise_speedscope(doc: Mapping[str, Any]) -> ProfileSummary:
    """Own time per function: the leaf (last frame) of each sampled stack gets its weight.

    Speedscope `sampled` profiles list stacks root first; py-spy writes one profile per
    thread and weights in seconds. Functions are keyed without line numbers.
    """
    frames = doc.get("shared", {}).get("frames", [])
    names: list[str] = []
    first_party: list[bool] = []
    for frame in frames:
        path = str(frame.get("file", ""))
        names.append(f"{frame.get('name', '?')} ({short_file(path)})")
        # entry points (`__main__`) are at the root of every stack: they say nothing
        first_party.append(
            package_of(path).startswith(FIRST_PARTY) and not path.endswith("/__main__.py")
        )
    out = ProfileSummary()
    for profile in doc.get("profiles", []):
        if profile.get("type") != "sampled":
            continue
        out.threads += 1
        samples = profile.get("samples", [])
        weights = profile.get("weights") or [1.0] * len(samples)
        for stack, weight in zip(samples, weights, strict=False):
            out.samples += 1
            out.sampled_s += weight
            if not stack:
                continue
            name = names[stack[-1]]
            out.own[name] = out.own.get(name, 0.0) + weight
            pkg = package_of(str(frames[stack[-1]].get("file", "")))
            out.packages[pkg] = out.packages.get(pkg, 0.0) + weight
            for ours in {names[i] for i in stack if first_party[i]}:  # once per sample
                out.inclusive[ours] = out.inclusive.get(ours, 0.0) + weight
    return out


def read_speedscope(path: Path) -> ProfileSummary:
    """Parse a speedscope JSON file."""
    return summarise_speedscope(json.loads(path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------- broker records


async def end_offsets(bootstrap: str) -> dict[str, int]:
    """Sum of the end offsets of every topic the broker lists (changelogs, internal ones too)."""
    settings = KafkaSettings(kafka_bootstrap=bootstrap)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        topics = await consumer.topics()
        parts = [
            TopicPartition(t, p)
            for t in sorted(topics)
            for p in consumer.partitions_for_topic(t) or ()
        ]
        offsets = await consumer.end_offsets(parts) if parts else {}
    finally:
        await consumer.stop()
    out: dict[str, int] = {}
    for tp, end in offsets.items():
        out[tp.topic] = out.get(tp.topic, 0) + int(end)
    return out


_KNOWN_ROLE = {t.name: t.role for t in ALL_TOPICS}
_OUTCOME = CANONICAL["notification_outcome"].name


def topic_kind(name: str) -> str:
    """What a topic carries, for the records-per-recommendation breakdown."""
    if name == _OUTCOME:
        return "outcomes"
    role = _KNOWN_ROLE.get(name)
    if role is Role.CANONICAL:
        return "lifecycle events"
    if role is Role.INBOUND:
        return "inbound"
    if role is Role.INTERNAL:
        return "internal hops"
    if role is Role.DEAD_LETTER:
        return "dead letters"
    if name.endswith("-changelog"):
        return "changelogs"
    if name.endswith("-repartition"):
        return "internal hops"
    if name.startswith("__"):
        return "broker internal"
    return "other"


def records_per_rec(
    before: Mapping[str, int], after: Mapping[str, int], recs: int
) -> dict[str, Any]:
    """Records written per recommendation: total, per kind, per topic (topics that grew)."""
    delta = {t: after.get(t, 0) - before.get(t, 0) for t in sorted(set(before) | set(after))}
    delta = {t: d for t, d in delta.items() if d > 0}
    n = max(recs, 1)
    kinds: dict[str, int] = {}
    for t, d in delta.items():
        kinds[topic_kind(t)] = kinds.get(topic_kind(t), 0) + d
    return {
        "recommendations": recs,
        "records": sum(delta.values()),
        "per_rec": round(sum(delta.values()) / n, 2),
        "by_kind": {k: round(v / n, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "by_topic": {t: round(d / n, 2) for t, d in sorted(delta.items(), key=lambda kv: -kv[1])},
    }


def cpu_per_rec(
    cpu: Mapping[str, Any],
    recs: int,
    services: Iterable[str],
    others: Iterable[str] = ("broker",),
    *,
    idle: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """CPU ms per recommendation of each process tree (a CpuWindow result); services' total.

    With `idle` (a CpuWindow result taken with no load), `above_idle` has the same figures
    less what each process burns doing nothing (polls, timers) over the same wall time.
    """
    procs = cpu.get("processes", {})
    wall = float(cpu.get("wall_s") or 0.0)
    idle_share = {k: v["core_share"] for k, v in (idle or {}).get("processes", {}).items()}
    n = max(recs, 1)
    services, others = tuple(services), tuple(others)

    def figures(used: Mapping[str, float]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in services:
            if name in used:
                out[name] = round(1000 * used[name] / n, 2)
        out["services_total"] = round(sum(1000 * used[k] / n for k in services if k in used), 2)
        for name in others:
            if name in used:
                out[name] = round(1000 * used[name] / n, 2)
        return out

    raw = {k: float(v["cpu_s"]) for k, v in procs.items()}
    out = figures(raw)
    if idle_share:
        out["above_idle"] = figures(
            {k: max(0.0, v - idle_share.get(k, 0.0) * wall) for k, v in raw.items()}
        )
    return out
