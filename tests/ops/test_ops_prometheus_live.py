"""Every dashboard panel's query returns data from a real Prometheus scraping the whole bus.

Starts the four services (stack_factory), drives traffic that touches every panel
(submissions, an accepted and answered case, cases that go overdue and escalate within
seconds, a webhook subscriber, invalid records that get dead-lettered), starts a real
`prometheus` on a loopback port scraping the services every second, then runs each
dashboard query through Prometheus's HTTP API. Skipped when the binary is absent (CI
installs Debian's `prometheus` package).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml

from phoihop_common.net import free_port
from phoihop_embedded.stack import Stack
from phoihop_schemas.topics import CANONICAL, INBOUND_RESPONSES, INBOUND_SUBMISSIONS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

SUPERVISOR_KEY = "dev-UBMTTQ_TINH"
WAIT_FOR_DATA = 150.0  # seconds: escalations need the shortened deadlines to pass


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []  # noqa: RUF012 - shared by the server's handler instances

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _Hook.received.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def webhook_url() -> Iterator[str]:
    """A local webhook receiver answering 204 to every POST."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _shorten_deadlines(config_dir: Path) -> None:
    """phan_anh cases go overdue and escalate within seconds; kien_nghi stays on time."""
    path = config_dir / "sla_policies.yaml"
    sla = yaml.safe_load(path.read_text(encoding="utf-8"))
    sla["kinds"]["phan_anh"] = {"accept": {"seconds": 2}, "answer": {"seconds": 4}}
    sla["kinds"]["kien_nghi"] = {"accept": {"seconds": 600}, "answer": {"seconds": 900}}
    sla["escalation"] = {
        "remind_before": {"seconds": 1},
        "levels": [
            {"after": {"seconds": 0}, "to": ["superior", "TT_HDND", "UBMTTQ_TINH"]},
            {"after": {"seconds": 2}, "to": ["UBND_TINH", "DOAN_DBQH"]},
        ],
    }
    path.write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")


def _subscribe(config_dir: Path, url: str) -> None:
    from phoihop_notify.store import new_secret

    doc = {
        "subscriptions": [
            {
                "agency": "UBMTTQ_TINH",
                "url": url,
                "secret": new_secret(),
                "event_types": [],
                "scope": "jurisdiction",
            }
        ],
        "contacts": {},
    }
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8"
    )


class _Prometheus:
    """A real Prometheus on loopback scraping the stack every second."""

    def __init__(self, *, binary: str, stack: Stack, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": name,
                    "scrape_interval": "1s",
                    "scrape_timeout": "900ms",
                    "static_configs": [{"targets": [f"127.0.0.1:{stack.ports[name]}"]}],
                }
                for name in stack.procs
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready: {self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{expr!r}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def metadata_names(self) -> set[str]:
        r = httpx.get(f"{self.url}/api/v1/metadata", timeout=10)
        return set(r.json()["data"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _submit(ingest: str, *, kind: str, text: str) -> str:
    r = httpx.post(
        f"{ingest}/v1/recommendations",
        headers={"X-API-Key": SUPERVISOR_KEY},
        json={
            "kind": kind,
            "channel": "tiep_xuc_cu_tri",
            "locality": "xa-an-binh",
            "text": text,
        },
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _assignee(audit: str, rec_id: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{audit}/v1/recommendations/{rec_id}",
            headers={"X-API-Key": SUPERVISOR_KEY},
            timeout=10,
        )
        if r.status_code == 200:
            last = r.json()
            if last.get("agency") and last.get("status") in ("assigned", "accepted"):
                return str(last["agency"])
        time.sleep(0.3)
    raise AssertionError(f"{rec_id} never assigned; last audit view: {last}")


def _answer(ingest: str, rec_id: str, agency: str) -> None:
    key = {"X-API-Key": f"dev-{agency}"}
    base = f"{ingest}/v1/recommendations/{rec_id}"
    accepted = httpx.post(f"{base}/accept", headers=key, json={}, timeout=30)
    assert accepted.status_code == 202, accepted.text
    deadline = time.monotonic() + 60
    while True:  # routing applies the acceptance first; ingest checks the assignee via audit
        r = httpx.post(
            f"{base}/answer",
            headers=key,
            json={"text": "Đã bố trí kinh phí sửa chữa đường liên thôn trong quý IV."},
            timeout=30,
        )
        if r.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 202, r.text


async def _produce_garbage(bootstrap: str) -> None:
    """Records no consumer can decode: each consuming service dead-letters them."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic in (INBOUND_SUBMISSIONS, INBOUND_RESPONSES, CANONICAL["received"]):
            await producer.send_and_wait(
                topic.name, value=b"{not an event", key=b"00000000-0000-4000-8000-000000000000"
            )
    finally:
        await producer.stop()


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    stack_factory: Callable[..., Stack],
    config_dir: Path,
    webhook_url: str,
    tmp_path: Path,
    ops: SimpleNamespace,
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus binary not installed (Debian package `prometheus`)")
    _shorten_deadlines(config_dir)
    _subscribe(config_dir, webhook_url)
    stack = stack_factory(
        config_dir=config_dir,
        extra_env={
            "PHOIHOP_ROUTING_TIMER_INTERVAL": "0.5",
            "PHOIHOP_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
            "PHOIHOP_NOTIFY_RETRY_SCHEDULE": "0,1,2",
        },
    )
    prometheus = _Prometheus(binary=binary, stack=stack, workdir=tmp_path / "prometheus")
    try:
        prometheus.wait_ready()
        ingest, audit = stack.url("ingest"), stack.url("audit")
        on_time = _submit(
            ingest,
            kind="kien_nghi",
            text="Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp.",
        )
        for text in (
            "Người dân phản ánh đèn chiếu sáng công cộng khu phố 2 bị hỏng nhiều tháng.",
            "Phản ánh việc thu gom rác thải sinh hoạt ở chợ xã không đúng giờ.",
        ):
            _submit(ingest, kind="phan_anh", text=text)
        _answer(ingest, on_time, _assignee(audit, on_time))
        asyncio.run(_produce_garbage(stack.bootstrap))

        queries = ops.dashboard_queries() + ops.dashboard_variable_queries()
        exprs = {q: ops.substitute_grafana_variables(q.expr) for q in queries}
        deadline = time.monotonic() + WAIT_FOR_DATA
        empty = list(queries)
        while empty and time.monotonic() < deadline:
            empty = [q for q in empty if not prometheus.query(exprs[q])]
            if empty:
                time.sleep(2)
        assert not empty, "dashboard queries without data:\n" + "\n".join(
            f"  {q.where}: {exprs[q]}" for q in empty
        )

        # A query naming a metric no service exports would fail here even if wrapped in
        # `or vector(0)`: Prometheus must know every name from the services' /metrics.
        exported = prometheus.metadata_names() | ops.builtin_series
        for q in queries:
            for name in ops.promql_metric_names(q.expr):
                base = name
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix) and name.removesuffix(suffix) in exported:
                        base = name.removesuffix(suffix)
                assert base in exported, f"{q.where}: {name} is exported by no service"
        assert _Hook.received, "the webhook subscriber got nothing"
    finally:
        prometheus.stop()
