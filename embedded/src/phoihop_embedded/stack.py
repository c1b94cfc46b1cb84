"""Run the whole bus on one machine: embedded broker + the four services as local processes.

Used by `make run` (`python -m phoihop_embedded.stack`) and by the end-to-end tests, so what
the tests start is exactly what a user starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_common.net import free_port
from phoihop_embedded.broker import EmbeddedBroker

SERVICES: tuple[str, ...] = ("audit", "routing", "notify", "ingest")
DEFAULT_PORTS: dict[str, int] = {"ingest": 8080, "audit": 8081, "notify": 8082, "routing": 8083}
DEFAULT_BROKER_PORT = 9092
REPLICA_SEP = "#"  # the k-th process of a service (k >= 2) is `<service>#<k>` in `Stack.procs`


def service_of(proc_name: str) -> str:
    """The service a process name belongs to: `routing#2` -> `routing`."""
    return proc_name.partition(REPLICA_SEP)[0]


def replica_names(service: str, count: int) -> list[str]:
    """Process names of a service's replicas: the first keeps the service's own name."""
    return [service, *(f"{service}{REPLICA_SEP}{k}" for k in range(2, count + 1))]


class StackError(Exception):
    """A process of the stack failed to start or become ready."""


@dataclass
class ServiceProcess:
    """One service (or one replica of it: `name` `routing#2`) running as a child process."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP interface."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (`python -m phoihop_<name>`), output appended to its log."""
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"phoihop_{service_of(self.name)}"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, sig: int) -> None:
        """Send a signal to the process group."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if not self.process or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL and reap, waiting at most `timeout` (fault tests; teardown never hangs)."""
        self.signal(signal.SIGKILL)
        if self.process:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name}: pid {self.process.pid} still there after SIGKILL", flush=True)

    def restart(self) -> None:
        """Start again after a stop or kill."""
        self.start()


@dataclass
class Stack:
    """Broker (embedded unless a bootstrap is given) and the four services.

    `replicas` runs more than one process of a service (e.g. `{"routing": 2}`): each has
    its own port (`ports` and `procs` key `routing#2`) and log; routing replicas their own
    data directory (faust tables are local to a worker); notify and audit replicas share
    their service's database, and each service's replicas share its consumer group.
    `procs[name]` stays the first process of each service; `replica_procs(name)` lists all.
    """

    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    broker_port: int = 0
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    config_dir: Path | None = None
    topic_prefix: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    replicas: dict[str, int] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap in use."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        assert self.broker is not None
        return self.broker.bootstrap

    def url(self, service: str) -> str:
        """Base URL of a service (its first process), or of one replica (`routing#2`)."""
        return self.procs[service].url

    def process_names(self) -> list[str]:
        """Every process of the stack, replicas right after their service's first."""
        return [p for s in self.services for p in replica_names(s, self.replicas.get(s, 1))]

    def replica_procs(self, service: str) -> list[ServiceProcess]:
        """The processes of one service, the first one first."""
        return [self.procs[n] for n in replica_names(service, self.replicas.get(service, 1))]

    def service_env(self, proc_name: str) -> dict[str, str]:
        """Environment of one process: its service's prefixed settings plus shared ones."""
        name = service_of(proc_name)
        prefix = f"PHOIHOP_{name.upper()}_"
        env = dict(os.environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                f"{prefix}HOST": "127.0.0.1",
                f"{prefix}PORT": str(self.ports[proc_name]),
                f"{prefix}KAFKA_BOOTSTRAP": self.bootstrap,
            }
        )
        if self.config_dir:
            env["PHOIHOP_CONFIG_DIR"] = str(self.config_dir)
        if self.topic_prefix:
            env["PHOIHOP_TOPIC_PREFIX"] = self.topic_prefix
        if name in ("audit", "notify", "ingest"):
            env[f"{prefix}DATABASE_URL"] = self._database_url(name)
        if name == "routing":
            env[f"{prefix}DATA_DIR"] = str(self.data_dir / _file_name(proc_name))
        if name == "ingest":
            env[f"{prefix}AUDIT_URL"] = f"http://127.0.0.1:{self.ports['audit']}"
        env.update(self.extra_env)
        return env

    def _database_url(self, name: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / f'{name}.db'}"

    def start(self, *, timeout: float = 90.0) -> Stack:
        """Start broker, create topics, start the services, wait until all are ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name in self.process_names():
            self.ports.setdefault(name, free_port())
        if not self.kafka_bootstrap:
            self.broker = EmbeddedBroker(
                port=self.broker_port, log_path=self.data_dir / "broker.log"
            ).start()
        prefix_env = {"PHOIHOP_TOPIC_PREFIX": self.topic_prefix} if self.topic_prefix else {}
        self._ensure_topics(prefix_env)
        for name in self.process_names():
            proc = ServiceProcess(
                name=name,
                port=self.ports[name],
                env=self.service_env(name),
                log_path=self.data_dir / f"{_file_name(name)}.log",
            )
            self.procs[name] = proc
            proc.start()
        try:
            self.wait_ready(timeout=timeout)
        except StackError:
            self.stop()
            raise
        return self

    def _ensure_topics(self, prefix_env: Mapping[str, str]) -> None:
        # Topic names are read from the registry at import; a prefix is applied in a child.
        if prefix_env:
            code = (
                "import asyncio; from phoihop_common.kafka import KafkaSettings, ensure_topics;"
                f"asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap={self.bootstrap!r})))"
            )
            subprocess.run(
                [sys.executable, "-c", code], env=os.environ | dict(prefix_env), check=True
            )
        else:
            asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=self.bootstrap)))

    def wait_ready(self, *, timeout: float = 90.0, services: tuple[str, ...] | None = None) -> None:
        """Poll each process's /readyz until 200 (`services`: process names, default all)."""
        deadline = time.monotonic() + timeout
        for name in services or tuple(self.procs):
            proc = self.procs[name]
            while True:
                if proc.process and proc.process.poll() is not None:
                    raise StackError(
                        f"{name} exited with {proc.process.returncode}; "
                        f"see {proc.log_path}:\n{tail(proc.log_path)}"
                    )
                try:
                    if httpx.get(f"{proc.url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} not ready after {timeout}s; see {proc.log_path}:\n"
                        f"{tail(proc.log_path)}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop services (reverse order), then the broker."""
        for name in reversed(list(self.procs)):
            self.procs[name].stop()
        if self.broker:
            self.broker.stop()


def parse_replicas(text: str) -> dict[str, int]:
    """`routing=2,notify=2` -> {"routing": 2, "notify": 2} (services of the stack, counts >= 1)."""
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, _, count = item.partition("=")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"not <service>=<count>: {item!r}")
        out[name] = int(count)
    return out


def _file_name(proc_name: str) -> str:
    """Log and data directory name of a process: `routing`, `routing-2`."""
    return proc_name.replace(REPLICA_SEP, "-")


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def main(argv: list[str] | None = None) -> int:
    """`make run`: start everything on the default ports, print URLs, stop on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="phoihop-run", description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("PHOIHOP_DATA_DIR", "var"))
    parser.add_argument("--kafka-bootstrap", default=os.environ.get("PHOIHOP_KAFKA_BOOTSTRAP"))
    parser.add_argument("--database-url", default=os.environ.get("PHOIHOP_DATABASE_URL"))
    parser.add_argument(
        "--replicas",
        type=parse_replicas,
        default={},
        help="processes per service, e.g. routing=2,notify=2,audit=2 (extra ones on free ports)",
    )
    args = parser.parse_args(argv)
    ports = {
        name: int(os.environ.get(f"PHOIHOP_{name.upper()}_PORT", DEFAULT_PORTS[name]))
        for name in SERVICES
    }
    stack = Stack(
        data_dir=Path(args.data_dir).resolve(),
        ports=ports,
        broker_port=int(os.environ.get("PHOIHOP_BROKER_PORT", DEFAULT_BROKER_PORT)),
        kafka_bootstrap=args.kafka_bootstrap,
        database_url=args.database_url,
        replicas=args.replicas,
    )
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print("phoihop: starting broker and services ...", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"phoihop: failed to start: {exc}", file=sys.stderr)
        return 1
    print(_banner(stack), flush=True)
    try:
        while not stopping:
            for name, proc in stack.procs.items():
                if proc.process and proc.process.poll() is not None:
                    print(
                        f"phoihop: {name} exited ({proc.process.returncode}); see {proc.log_path}",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
    finally:
        print("\nphoihop: stopping ...", flush=True)
        stack.stop()
        print("phoihop: stopped.", flush=True)
    return 0


def _banner(stack: Stack) -> str:
    ingest, audit, notify, routing = (
        stack.url(n) for n in ("ingest", "audit", "notify", "routing")
    )
    kind = "Kafka protocol, embedded Tansu, in memory" if stack.broker else "Kafka"
    return f"""
phoihop is running (data in {stack.data_dir}, logs: <service>.log there)

  broker   {stack.bootstrap}  ({kind})
  ingest   {ingest}/docs    submissions and answers
  audit    {audit}/docs     status, trail, verify
  notify   {notify}/docs    webhook subscriptions
  routing  {routing}/metrics

Try it (development API keys are dev-<AGENCY_CODE>):

  curl -s -X POST {ingest}/v1/recommendations \\
       -H 'X-API-Key: dev-UBMTTQ_TINH' -H 'Content-Type: application/json' \\
       -d '{{"kind":"kien_nghi","channel":"tiep_xuc_cu_tri","locality":"xa-an-binh",
            "text":"Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4"}}'
  curl -s {audit}/v1/recommendations/<id> -H 'X-API-Key: dev-TT_HDND'
  curl -s {audit}/v1/recommendations/<id>/trail -H 'X-API-Key: dev-TT_HDND'

Ctrl-C stops everything.
"""


if __name__ == "__main__":
    raise SystemExit(main())
