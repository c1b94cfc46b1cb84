"""schemathesis against the live OpenAPI of ingest, audit and notify: the documents are true.

The whole bus runs as real processes on the embedded broker; the schemathesis CLI loads
each service's `/openapi.json` and sends generated requests (valid and invalid, with the
documented bodies) with an agency's key, to 127.0.0.1 only. Every answer must be no 5xx,
have a documented status, content type and schema, and a protected operation must refuse
a request without the key (`CHECKS`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from phoihop_embedded.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "audit", "notify")
AGENCY = "TT_HDND"
MAX_EXAMPLES = 30
RUN_TIMEOUT = 200.0  # seconds for the three runs side by side (about 30 s on 2 cores)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
)


class SchemathesisNotFoundError(Exception):
    """The schemathesis CLI is not installed next to this Python."""


def schemathesis_cli() -> str:
    """The `schemathesis` executable of this environment."""
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise SchemathesisNotFoundError("install the dev dependencies (uv sync)")
    return found


def start_schemathesis(*, base_url: str, workdir: Path) -> subprocess.Popen[str]:
    """One CLI run against a service, started; exit status 0 when every check passed."""
    assert base_url.startswith("http://127.0.0.1:"), base_url
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        schemathesis_cli(),
        "run",
        f"{base_url}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={MAX_EXAMPLES}",
        f"--header=X-API-Key: dev-{AGENCY}",
        "--workers=1",
        "--request-timeout=30",
        "--suppress-health-check=all",
        "--report=junit",
        f"--report-dir={workdir}",
    ]
    env = os.environ | {
        "SCHEMATHESIS_HOOKS": "tests.contracts.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    # Run from the test's directory: hypothesis keeps its example database in the cwd.
    return subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def recommendations_in_audit() -> Callable[[Stack], int]:
    """How many recommendations audit shows the supervisor (0 until the bus delivered)."""

    def count(stack: Stack) -> int:
        resp = httpx.get(
            f"{stack.url('audit')}/v1/recommendations",
            headers={"X-API-Key": f"dev-{AGENCY}"},
            timeout=10,
        )
        return int(resp.json()["total"]) if resp.status_code == 200 else 0

    return count


def test_every_answer_of_every_service_matches_its_openapi(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = stack_factory()
    failed: dict[str, str] = {}
    # the three services are separate processes: one CLI run each, side by side
    started = time.monotonic()
    runs = {
        service: start_schemathesis(base_url=stack.url(service), workdir=tmp_path / service)
        for service in SERVICES
    }
    for service, run in runs.items():
        try:
            stdout, stderr = run.communicate(
                timeout=max(1.0, started + RUN_TIMEOUT - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            run.kill()
            stdout, stderr = run.communicate()
            failed[service] = f"no result within {RUN_TIMEOUT:.0f} s\n{stdout[-6000:]}"
            continue
        if run.returncode != 0:
            failed[service] = f"exit {run.returncode}\n{stdout[-6000:]}\n{stderr[-2000:]}"
    print(f"schemathesis: three services side by side in {time.monotonic() - started:.1f} s")
    assert not failed, "\n\n".join(f"===== {name} =====\n{out}" for name, out in failed.items())

    # The documented bodies are real ones: the example submissions went through the bus,
    # and every service is still ready after the barrage.
    count = recommendations_in_audit()
    deadline = time.monotonic() + 60
    while count(stack) == 0:
        assert time.monotonic() < deadline, "no generated submission reached audit"
        time.sleep(0.5)
    stack.wait_ready(timeout=60)
