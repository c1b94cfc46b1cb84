"""The integrator's examples (docs/integrating.md) run against the whole bus, as outsiders.

`examples/node/round_trip.mjs` (kafkajs + standardwebhooks from npm) and
`examples/python_confluent/round_trip.py` (confluent-kafka with librdkafka's default
partitioner, httpx, standardwebhooks) each: submit a recommendation over Kafka, receive and
verify the signed `assigned` webhook, answer over Kafka as the assigned agency and read the
trail over HTTP. Each runs as a subprocess against its own bus (broker + four services), with
a webhook subscription of the assigned agency pointing at the example's receiver on a free
loopback port. The Node example is skipped when node or its node_modules are missing, unless
CI is set (then it fails): `.ci/run` installs them with `npm ci`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.bus import NOTIFY_ENV, SUBMITTER, SUPERVISOR, copy_config, key, new_secret
from phoihop_common.net import free_port
from phoihop_embedded.stack import Stack
from phoihop_ingest.idempotency import recommendation_id
from phoihop_testkit.polling import poll

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]

NODE_DIR = ROOT / "examples" / "node"
PYTHON_SCRIPT = ROOT / "examples" / "python_confluent" / "round_trip.py"
RUN_TIMEOUT = 90.0  # seconds for one example's whole run (it takes a few)
STEP_TIMEOUT = "40"  # the example's own limit per step


@dataclass(frozen=True)
class Example:
    """One example and the case it submits: a commune road repair, so the assignee is known."""

    name: str
    locality: str
    assignee: str  # routing's classifier: commune-level road -> that commune's committee

    def command(self) -> tuple[list[str], Path]:
        """Command line and working directory."""
        if self.name == "node":
            return [_node_or_skip(), "round_trip.mjs"], NODE_DIR
        return [sys.executable, str(PYTHON_SCRIPT)], ROOT


EXAMPLES = (
    Example("node", locality="xa-an-binh", assignee="UBND_XA_XA_AN_BINH"),
    Example("python_confluent", locality="xa-tan-phu", assignee="UBND_XA_XA_TAN_PHU"),
)


def _node_or_skip() -> str:
    """`node`, with the example's packages installed; skip locally without them, fail in CI."""
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules"
    packages = ("kafkajs", "standardwebhooks")
    installed = all((modules / p / "package.json").is_file() for p in packages)
    if node is not None and installed:
        return node
    problem = (
        "node is not on PATH"
        if node is None
        else f"{modules} lacks kafkajs / standardwebhooks: run `npm ci` in {NODE_DIR}"
    )
    if os.environ.get("CI", "").lower() in ("", "0", "false"):
        pytest.skip(f"{problem} (fails when CI is set)")
    pytest.fail(f"the Node example cannot run in CI: {problem}")


def _example_env(stack: Stack, example: Example, *, port: int, secret: str) -> dict[str, str]:
    """The example's settings, and nothing of this process's PHOIHOP_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOIHOP_")}
    env.update(
        {
            "PHOIHOP_BOOTSTRAP": stack.bootstrap,
            "PHOIHOP_TOPIC_PREFIX": stack.topic_prefix or "phoihop",
            "PHOIHOP_AUDIT_URL": stack.url("audit"),
            # the assigned agency's key: it answers the case and may read its trail
            "PHOIHOP_API_KEY": key(example.assignee)["X-API-Key"],
            "PHOIHOP_SUBMITTER": SUBMITTER,
            "PHOIHOP_LOCALITY": example.locality,
            "PHOIHOP_WEBHOOK_SECRET": secret,
            "PHOIHOP_WEBHOOK_HOST": "127.0.0.1",
            "PHOIHOP_WEBHOOK_PORT": str(port),
            "PHOIHOP_TIMEOUT": STEP_TIMEOUT,
        }
    )
    return env


def _get(stack: Stack, path: str, agency: str) -> httpx.Response:
    return httpx.get(f"{stack.url('audit')}{path}", headers=key(agency), timeout=10)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_submits_verifies_the_webhook_answers_and_reads_the_trail(
    example: Example, stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    command, cwd = example.command()  # skips (or fails in CI) before starting anything
    port = free_port()
    secret = new_secret()
    config = copy_config(
        tmp_path / "config",
        [
            {
                "agency": example.assignee,
                "url": f"http://127.0.0.1:{port}/phoihop/webhook",
                "secret": secret,
                "event_types": ["assigned"],
            }
        ],
    )
    stack = stack_factory(config_dir=config, extra_env=dict(NOTIFY_ENV))

    started = time.monotonic()
    run = subprocess.run(
        command,
        cwd=cwd,
        env=_example_env(stack, example, port=port, secret=secret),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    took = time.monotonic() - started
    output = f"exit {run.returncode} after {took:.1f} s\n{run.stdout}\n{run.stderr}"
    assert run.returncode == 0, output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True, output
    rec_id = summary["recommendation_id"]
    # The id the example computed is the one the bus derives (same uuid5, same inputs).
    assert rec_id == recommendation_id(agency=SUBMITTER, key=summary["idempotency_key"])
    assert summary["assignee"] == example.assignee, output

    # The trail as a supervisor reads it: submitted over Kafka, assigned, answered over Kafka.
    resp = _get(stack, f"/v1/recommendations/{rec_id}/trail", SUPERVISOR)
    assert resp.status_code == 200, resp.text
    events = resp.json()["events"]
    assert [e["type"] for e in events] == ["received", "assigned", "answered"]
    assert [e["sequence"] for e in events] == [1, 2, 3]
    received, assigned, answered = (e["data"] for e in events)
    assert received["submitted_by"] == SUBMITTER
    assert received["locality"] == example.locality
    assert received["recommendation_id"] == rec_id
    assert assigned["agency"] == example.assignee
    assert answered["agency"] == example.assignee
    assert answered["text"] == summary["answer"]
    assert answered["recipients"] == [SUBMITTER]

    status = _get(stack, f"/v1/recommendations/{rec_id}", SUPERVISOR).json()
    assert status["status"] == "answered"
    assert status["agency"] == example.assignee

    # The assignee's own trail view lists its webhook's delivery: the example answered 2xx.
    def delivered() -> list[dict[str, Any]]:
        body = _get(stack, f"/v1/recommendations/{rec_id}/trail", example.assignee).json()
        return [
            n["data"]
            for n in body["notifications"]
            if n["data"]["outcome"] == "delivered" and n["data"]["event_type"] == "assigned"
        ]

    [outcome] = poll(delivered, timeout=20, what="the delivered outcome of the webhook")
    assert outcome["channel"] == "webhook"
    assert 200 <= outcome["status_code"] < 300
