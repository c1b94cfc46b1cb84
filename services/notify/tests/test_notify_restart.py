"""notify as a real process (`python -m phoihop_notify`): killed mid-schedule, it resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from phoihop_common.net import free_port
from phoihop_notify.store import new_secret
from phoihop_notify.testing import poll, publish
from phoihop_schemas.events import Assigned, Decision, Kind, Level, Received

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


class NotifyProcess:
    """The service as a child process with its own log."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env, self.log, self.port = env, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "phoihop_notify"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self) -> None:
        async def check() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{self.url}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await poll(check, within=90, interval=0.2)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def test_killed_mid_schedule_resumes_after_restart(
    kafka_bootstrap, database_url, config_dir, write_subscriptions, receivers, tmp_path
):
    secret = new_secret()
    receiver = await receivers(script=[(500, {}), (500, {})])
    write_subscriptions([{"agency": "SO_XAY_DUNG", "url": receiver.url, "secret": secret}])
    port = free_port()
    env = dict(os.environ) | {
        "PYTHONUNBUFFERED": "1",
        "PHOIHOP_CONFIG_DIR": str(config_dir),
        "PHOIHOP_NOTIFY_HOST": "127.0.0.1",
        "PHOIHOP_NOTIFY_PORT": str(port),
        "PHOIHOP_NOTIFY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PHOIHOP_NOTIFY_DATABASE_URL": database_url,
        "PHOIHOP_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PHOIHOP_NOTIFY_RETRY_SCHEDULE": "0,4,4,4",
        "PHOIHOP_NOTIFY_CONSUMER_GROUP": f"notify-{uuid.uuid4().hex[:8]}",
    }
    notify = NotifyProcess(env, tmp_path / "notify.log", port)
    rec = str(uuid.uuid4())
    headers = {"X-API-Key": "dev-SO_XAY_DUNG"}
    try:
        notify.start()
        await notify.ready()
        await publish(
            kafka_bootstrap,
            Received(
                recommendation_id=rec,
                sequence=1,
                occurred_at=NOW,
                kind=Kind.PHAN_ANH,
                channel="cong_thong_tin",
                locality="phuong-bac-son",
                text="Phản ánh đèn tín hiệu giao thông ngã tư hỏng",
                submitted_by="UBND_XA_PHUONG_BAC_SON",
            ),
            Assigned(
                recommendation_id=rec,
                sequence=2,
                occurred_at=NOW,
                agency="SO_XAY_DUNG",
                category="GIAO_THONG",
                level=Level.TINH,
                kind=Kind.PHAN_ANH,
                locality="phuong-bac-son",
                deadline=NOW + timedelta(days=30),
                decision=Decision(rule="keywords", version="1"),
            ),
        )

        async def retry_recorded() -> bool:
            async with httpx.AsyncClient() as c:
                got = await c.get(
                    f"{notify.url}/v1/deliveries", params={"status": "pending"}, headers=headers
                )
            items = got.json()["items"]
            return bool(items) and items[0]["attempts"] == 1 and items[0]["last_status_code"] == 500

        await poll(retry_recorded)
        notify.kill()
        killed_at = time.monotonic()
        assert len(receiver.requests) == 1
        notify.start()
        await notify.ready()
        await poll(lambda: receiver.ok(), within=60)

        async def delivered() -> list[dict[str, object]]:
            async with httpx.AsyncClient() as c:
                got = await c.get(
                    f"{notify.url}/v1/deliveries", params={"status": "delivered"}, headers=headers
                )
            return list(got.json()["items"])

        # the receiver has its 200 before notify reads it and records the attempt
        done = await poll(delivered)
    finally:
        notify.stop()
    assert [r.status for r in receiver.requests] == [500, 500, 200]
    assert all(r.at > killed_at for r in receiver.requests[1:])  # resumed by the new process
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    assert done[0]["attempts"] == 3
    attempts = [
        json.loads(line)
        for line in notify.log.read_text().splitlines()
        if '"delivery_attempt"' in line
    ]
    assert [a["outcome"] for a in attempts] == ["retry_scheduled", "retry_scheduled", "delivered"]
    assert {a["service"] for a in attempts} == {"notify"}  # structured JSON logs
