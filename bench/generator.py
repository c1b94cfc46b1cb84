"""Open-loop load generator in its own process, so it never shares a GIL with what it measures.

`python -m bench.generator --url URL --api-key KEY --rate R --seconds S --start N --out FILE`:
request i is due at t0 + i/R whatever the answers (open loop: a slow server gets more requests
in flight, not fewer requests). Bodies are generated and encoded before the clock starts
(distinct texts, `bench.texts.generate(seed=13, start=N)`), the client is aiohttp with
keep-alive connections. It writes one tab-separated line per request to FILE (intended send
time, actual send time, answer time — wall clock —, status, id) and prints one JSON summary
line on stdout: achieved vs offered rate, how late sends were, its own CPU, so the caller can
say when the generator (not the bus) was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import latency_summary
from bench.texts import generate

ROOT = Path(__file__).resolve().parents[1]
MAX_CONNECTIONS = 1024
MAX_IN_FLIGHT = 4096  # beyond this a request is dropped and counted (never seen so far)
REQUEST_TIMEOUT_S = 120.0
SEED = 13
# the generator is suspect past these: it sent late, slower than offered, or was busy
LAG_RATE_SHARE = 0.97
LAG_LATENESS_P99_MS = 50.0
LAG_CORE_SHARE = 0.5


def encoded_bodies(count: int, *, start: int) -> list[bytes]:
    """`count` distinct submission bodies, JSON-encoded."""
    return [
        json.dumps(g.body, ensure_ascii=False).encode()
        for g in generate(count, seed=SEED, start=start)
    ]


@dataclass
class Row:
    """One request: when it was due, sent, answered (wall clock), its status and id."""

    intended: float
    sent: float
    answered: float
    status: int
    rec_id: str


async def drive(
    *, url: str, api_key: str, bodies: list[bytes], rate: float
) -> tuple[list[Row], dict[str, Any]]:
    """Send `bodies` at `rate`/s, open loop; the rows and the generator's own figures."""
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=MAX_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    rows: list[Row] = []
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    dropped = 0
    max_in_flight = 0
    n = len(bodies)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(intended: float, body: bytes) -> None:
            sent = time.time()
            status, rec_id = 0, ""
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    status = resp.status
                    payload = await resp.read()
                if 200 <= status < 300:
                    rec_id = _rec_id(payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
            rows.append(Row(intended, sent, time.time(), status, rec_id))

        cpu0 = time.process_time()
        wall0 = time.time()
        t0 = time.perf_counter()
        i = 0
        while i < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                if len(tasks) >= MAX_IN_FLIGHT:
                    dropped += 1
                else:
                    task = asyncio.create_task(one(wall0 + i / rate, bodies[i]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
            max_in_flight = max(max_in_flight, len(tasks))
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        send_wall = time.perf_counter() - t0
        send_cpu = time.process_time() - cpu0
        if tasks:
            await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT_S + 5)
        total_wall = time.perf_counter() - t0
        total_cpu = time.process_time() - cpu0
    own = {
        "send_wall_s": round(send_wall, 3),
        "total_wall_s": round(total_wall, 3),
        "cpu_s": round(total_cpu, 3),
        "core_share": round(send_cpu / send_wall, 3) if send_wall > 0 else None,
        "max_in_flight": max_in_flight,
        "dropped": dropped,
        "errors": errors,
    }
    return rows, own


def _rec_id(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return ""
    return str(data.get("id") or "") if isinstance(data, dict) else ""


def summarise(rows: list[Row], own: dict[str, Any], *, rate: float, planned: int) -> dict[str, Any]:
    """Achieved vs offered rate, lateness of sends, answer latency, statuses, lag verdict."""
    sent = sorted(r.sent for r in rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    achieved = round((len(sent) - 1) / span, 1) if span > 0 else None
    late = latency_summary([max(0.0, r.sent - r.intended) for r in rows])
    answer = latency_summary([r.answered - r.intended for r in rows if 200 <= r.status < 300])
    out: dict[str, Any] = {
        "offered_per_s": rate,
        "planned": planned,
        "sent": len(rows),
        "ok": sum(1 for r in rows if 200 <= r.status < 300 and r.rec_id),
        "achieved_per_s": achieved,
        "statuses": statuses,
        "send_late_ms": late,
        "answer_ms": answer,
        **own,
    }
    out["lag"] = lag_reasons(out)
    return out


def lag_reasons(summary: dict[str, Any]) -> list[str]:
    """Why the generator, not the system under test, may have set the pace (empty: it kept up)."""
    reasons: list[str] = []
    rate = summary.get("offered_per_s") or 0.0
    achieved = summary.get("achieved_per_s")
    if summary.get("planned", 0) > 1 and achieved is not None and achieved < LAG_RATE_SHARE * rate:
        reasons.append(f"sent {achieved:.1f}/s of {rate:g}/s offered")
    late = (summary.get("send_late_ms") or {}).get("p99_ms")
    if late is not None and late > LAG_LATENESS_P99_MS:
        reasons.append(f"sends p99 {late:.0f} ms late")
    share = summary.get("core_share")
    if share is not None and share > LAG_CORE_SHARE:
        reasons.append(f"generator used {share:.0%} of a core")
    if summary.get("dropped"):
        reasons.append(f"{summary['dropped']} requests dropped ({MAX_IN_FLIGHT} in flight)")
    return reasons


def main(argv: list[str] | None = None) -> int:
    """Generate, send, write the rows, print the summary."""
    parser = argparse.ArgumentParser(prog="bench.generator", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--start", type=int, default=0, help="first text index (distinct texts)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    planned = max(1, round(args.rate * args.seconds))
    bodies = encoded_bodies(planned, start=args.start)
    print("start", flush=True)
    rows, own = asyncio.run(
        drive(url=args.url, api_key=args.api_key, bodies=bodies, rate=args.rate)
    )
    with Path(args.out).open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(f"{r.intended:.6f}\t{r.sent:.6f}\t{r.answered:.6f}\t{r.status}\t{r.rec_id}\n")
    print(json.dumps(summarise(rows, own, rate=args.rate, planned=planned)), flush=True)
    return 0


# ---------------------------------------------------------------------- the caller's side


@dataclass
class GeneratorRun:
    """What one generator process did: its summary and the accepted ids with their due time."""

    summary: dict[str, Any]
    submitted: dict[str, float] = field(default_factory=dict)  # id -> intended send time

    @property
    def lagged(self) -> bool:
        """The generator, not the system under test, may have been the limit."""
        return bool(self.summary.get("lag"))


@dataclass
class GeneratorProcess:
    """`python -m bench.generator` as a child: start, wait for its clock to start, read it."""

    url: str
    api_key: str
    rate: float
    seconds: float
    start_index: int
    out_path: Path
    process: subprocess.Popen[str] | None = None

    def start(self) -> GeneratorProcess:
        """Start the process (it generates its bodies first, then prints `start`)."""
        err = self.out_path.with_suffix(".log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "bench.generator", "--url", self.url,
                "--api-key", self.api_key, "--rate", str(self.rate),
                "--seconds", str(self.seconds), "--start", str(self.start_index),
                "--out", str(self.out_path),
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
        )  # fmt: skip
        return self

    def sending(self) -> None:
        """Block until the generator's clock starts (its first line)."""
        assert self.process is not None
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "start":
            self.wait()  # raises with the reason
            raise RuntimeError(f"generator said {line!r} instead of 'start'")

    def wait(self) -> GeneratorRun:
        """Wait for the end; the summary and the ids the server accepted."""
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            out, _ = self.process.communicate(timeout=self.seconds + REQUEST_TIMEOUT_S + 120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("generator did not finish") from None
        lines = [x for x in out.strip().splitlines() if x.startswith("{")]
        if self.process.returncode != 0 or not lines:
            log = self.out_path.with_suffix(".log").read_text(errors="replace")[-1000:]
            raise RuntimeError(f"generator exited with {self.process.returncode}: {log}")
        return GeneratorRun(summary=json.loads(lines[-1]), submitted=read_rows(self.out_path))

    def stop(self) -> None:
        """Kill it if it is still there (teardown)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def read_rows(path: Path) -> dict[str, float]:
    """Accepted ids and their intended send time from the generator's output file."""
    submitted: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 5 and parts[4] and 200 <= int(parts[3]) < 300:
            submitted[parts[4]] = float(parts[0])
    return submitted


def run_generator(
    *, url: str, api_key: str, rate: float, seconds: float, start: int, out_path: Path
) -> GeneratorRun:
    """Run the generator process to completion (blocking)."""
    proc = GeneratorProcess(url, api_key, rate, seconds, start, out_path).start()
    try:
        return proc.wait()
    finally:
        proc.stop()


if __name__ == "__main__":
    raise SystemExit(main())
