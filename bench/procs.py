"""What /proc says about the stack's processes: peak and current RSS, CPU seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    """One process: peak RSS (VmHWM), current RSS and CPU seconds so far."""

    pid: int
    name: str
    hwm_mb: float
    rss_mb: float
    cpu_s: float


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces: fields after the closing parenthesis.
    return raw[raw.rfind(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Every descendant of `pid`."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def info(pid: int) -> ProcInfo | None:
    """Memory and CPU of one process, None if it is gone."""
    fields = _stat_fields(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    if fields is None:
        return None
    values = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return ProcInfo(pid, comm, values.get("VmHWM", 0.0), values.get("VmRSS", 0.0), cpu)


def tree(pid: int) -> list[ProcInfo]:
    """`pid` and its descendants."""
    return [p for p in (info(x) for x in [pid, *children(pid)]) if p is not None]


def cpu_seconds(pid: int, *, descendants: bool = True) -> float:
    """CPU seconds of a process (and its live descendants)."""
    if not descendants:
        own = info(pid)
        return own.cpu_s if own else 0.0
    return sum(p.cpu_s for p in tree(pid))
