"""`make eval EVAL_ARGS=--via-bus` (`python -m phoihop_testkit.evaluate_bus [--corpus PATH ...]
[--config-dir DIR] [--json]`): the labelled corpus through the real, running bus.

Starts the embedded broker and the four services as processes (the same `Stack` as
`make run`), submits each record through ingest's HTTP API in file order — waiting until
routing has decided it before the next, so duplicates meet their open case as they would
in order of arrival — and reads every decision back from audit's status read model. The
report is `phoihop_routing.evaluate`'s (`score`, `render`), one per corpus, labelled
"(via the bus)"; `--pairs` scores the people-decided pairs in process, as `evaluate` does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from phoihop_embedded.stack import Stack
from phoihop_routing import evaluate
from phoihop_routing.labelled import TRIAGE_AGENCY, Prediction, Record

SUBMITTER_KEY = {"X-API-Key": "dev-UBMTTQ_TINH"}
READER_KEY = {"X-API-Key": "dev-TT_HDND"}
DECIDED = {"assigned", "merged", "triage"}


class BusEvaluationError(Exception):
    """A record could not be submitted or was not decided in time."""


def _body(rec: Record) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": rec.kind.value,
        "channel": rec.channel,
        "locality": rec.locality,
        "text": rec.text,
        "source_ref": f"eval-{rec.id}",
    }
    if rec.reporter:
        body["reporter"] = rec.reporter
    if rec.submitted_at:
        body["submitted_at"] = rec.submitted_at
    return body


def _wait_decided(client: httpx.Client, audit: str, rec_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = client.get(f"{audit}/v1/recommendations/{rec_id}", headers=READER_KEY)
        if resp.status_code == 200 and resp.json().get("status") in DECIDED:
            return dict(resp.json())
        time.sleep(0.05)
    raise BusEvaluationError(f"{rec_id} not routed within {timeout}s")


def evaluate_via_bus(
    *, records: Sequence[Record], config_dir: Path | None = None, timeout: float = 30.0
) -> dict[str, Prediction]:
    """Submit every record through the running bus; predictions read back from audit."""
    with tempfile.TemporaryDirectory(prefix="phoihop-eval-") as tmp:
        stack = Stack(data_dir=Path(tmp), config_dir=config_dir).start()
        try:
            return _run(stack, records, timeout)
        finally:
            stack.stop()


def _run(stack: Stack, records: Sequence[Record], timeout: float) -> dict[str, Prediction]:
    ingest, audit = stack.url("ingest"), stack.url("audit")
    statuses: dict[str, dict[str, Any]] = {}
    bus_id: dict[str, str] = {}
    with httpx.Client(timeout=30) as client:
        for rec in records:
            resp = client.post(
                f"{ingest}/v1/recommendations", json=_body(rec), headers=SUBMITTER_KEY
            )
            if resp.status_code != 202:
                raise BusEvaluationError(
                    f"{rec.id}: ingest answered {resp.status_code} {resp.text}"
                )
            bus_id[rec.id] = resp.json()["id"]
            statuses[rec.id] = _wait_decided(client, audit, bus_id[rec.id], timeout)
    corpus_id = {v: k for k, v in bus_id.items()}
    predictions: dict[str, Prediction] = {}
    for rec in records:
        status = statuses[rec.id]
        target = status
        group = rec.id
        if status.get("duplicate_of"):
            group = predictions[corpus_id[status["duplicate_of"]]].group
            target = statuses[corpus_id[status["duplicate_of"]]]
        decision = (target.get("assignments") or [{}])[0]
        predictions[rec.id] = Prediction(
            category=str(target.get("category")),
            level=str(target.get("level")),
            agency=str(target.get("agency")),
            group=group,
            rule=str(decision.get("rule", "")),
            below_triage=target.get("agency") == TRIAGE_AGENCY and target.get("category") != "KHAC",
        )
    return predictions


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `make eval EVAL_ARGS=--via-bus`: routing's evaluator, through the bus."""
    return evaluate.main(
        argv,
        via_bus=lambda records, config_dir: evaluate_via_bus(
            records=records, config_dir=config_dir
        ),
        prog="python -m phoihop_testkit.evaluate_bus",
    )


if __name__ == "__main__":
    raise SystemExit(main())
