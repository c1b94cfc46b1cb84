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

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from phoihop_common.config import load_reference
from phoihop_embedded.stack import Stack
from phoihop_routing import evaluate
from phoihop_routing.classify import Classifier
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
    """Entry point of `make eval EVAL_ARGS=--via-bus`."""
    parser = argparse.ArgumentParser(prog="python -m phoihop_testkit.evaluate_bus")
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=None,
        help="labelled JSON-lines file (repeat for several; default: every corpus of the "
        "checkout's corpus/, else ../shared/corpus/dev.jsonl)",
    )
    parser.add_argument("--config-dir", type=Path, default=None, help="deploy/config to use")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (a list of reports when several corpora are evaluated)",
    )
    # accepted for `make eval EVAL_ARGS=--via-bus`: through the bus is what this module does
    parser.add_argument("--via-bus", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pairs",
        type=Path,
        action="append",
        default=None,
        help="JSON-lines file of pairs people decided; scored in process, as "
        "`python -m phoihop_routing.evaluate --pairs` does",
    )
    args = parser.parse_args(argv)
    if args.pairs:
        pairs_argv = [a for p in args.pairs for a in ("--pairs", str(p))]
        if args.config_dir is not None:
            pairs_argv += ["--config-dir", str(args.config_dir)]
        return evaluate.main([*pairs_argv, *(["--json"] if args.json else [])])
    corpora: list[Path] = args.corpus or evaluate.default_corpora()
    try:
        loaded = [(corpus, evaluate.load_corpus(corpus)) for corpus in corpora]
    except evaluate.CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = Classifier.from_config(reference=load_reference(args.config_dir))
    reports = []
    for corpus, records in loaded:
        predictions = evaluate_via_bus(records=records, config_dir=args.config_dir)
        reports.append(
            evaluate.score(
                records=records,
                predictions=predictions,
                corpus=f"{corpus} (via the bus)",
                rules_version=classifier.version,
            )
        )
    if args.json:
        docs = [asdict(r) for r in reports]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, ensure_ascii=False, indent=2))
    else:
        print("\n\n".join(evaluate.render(r) for r in reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
