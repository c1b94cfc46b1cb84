#!/usr/bin/env python3
"""One recommendation's round trip through phoihop, as an agency's Python system does it.

Written the way an outside integrator would: confluent-kafka (librdkafka, with its default
partitioner), httpx and the `standardwebhooks` package, and nothing of phoihop's own code.

1. start an HTTP server that receives phoihop's signed webhooks (Standard Webhooks);
2. submit a recommendation over Kafka (CloudEvents binary mode: ce_* headers, JSON value);
   compute its recommendation id (uuid5, the same function the bus uses) and confirm it from
   the `received` event, while watching the dead-letter topic for anything we sent;
3. wait for the `assigned` webhook of that recommendation, verify its signature and read
   which agency it was assigned to;
4. answer it over Kafka as that agency (key = recommendation id);
5. read the audit trail over HTTP until the answer is there.

In real life steps 2 and 3-4 belong to two systems (the submitting body and the assigned
body); one script plays both so that the whole contract is exercised in one run.

Every option also reads an environment variable (see `--help`). Progress goes to stderr;
the last line on stdout is a JSON summary. Exit code 0 on success, 1 on any failure, 2 on
bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from standardwebhooks import Webhook, WebhookVerificationError

# ------------------------------------------------------------------------------- the contract

# uuid5 namespace of recommendation ids (phoihop_schemas.codec.SUBMISSION_ID_NAMESPACE).
SUBMISSION_ID_NAMESPACE = uuid.UUID("0b6f5a3e-2c7d-4e41-8f0a-696e67657374")
SUBMISSION_TYPE = "vn.phoihop.inbound.submission.v1"
RESPONSE_TYPE = "vn.phoihop.inbound.response.v1"
ASSIGNED_TYPE = "vn.phoihop.recommendation.assigned.v1"


def recommendation_id(submitted_by: str, key: str) -> str:
    """The id the bus gives a submission: uuid5 over "<submitted_by>\\x1f<idempotency key>"."""
    return str(uuid.uuid5(SUBMISSION_ID_NAMESPACE, f"{submitted_by}\x1f{key}"))


def ce_headers(*, ce_type: str, source: str, subject: str | None = None) -> dict[str, str]:
    """CloudEvents 1.0 attributes as Kafka headers (binary content mode; UTF-8 values)."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid.uuid4()),
        "ce_source": source,
        "ce_type": ce_type,
        "ce_time": datetime.now(UTC).isoformat(),
        "content-type": "application/json",
    }
    if subject:
        headers["ce_subject"] = subject
    return headers


# ------------------------------------------------------------------------------- settings


class RoundTripError(Exception):
    """The round trip failed; the message says where."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    hamlet = random.randint(2, 98)
    # Hamlet and alley numbers vary per run: the bus merges a repeat of an open case (same
    # commune, same concern, same objects) instead of assigning it again.
    text = (
        f"Cử tri thôn {hamlet} kiến nghị sửa chữa tuyến đường liên thôn {hamlet} – thôn "
        f"{hamlet + 1}, đoạn qua ngõ {random.randint(2, 998)}; mặt đường bê tông đã vỡ nát, "
        "xe chở lúa đi lại khó khăn."
    )
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bootstrap",
        default=env("PHOIHOP_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap (PHOIHOP_BOOTSTRAP)",
    )
    p.add_argument(
        "--topic-prefix",
        default=env("PHOIHOP_TOPIC_PREFIX", "phoihop"),
        help="the deployment's topic prefix (PHOIHOP_TOPIC_PREFIX)",
    )
    p.add_argument(
        "--audit-url",
        default=env("PHOIHOP_AUDIT_URL", "http://127.0.0.1:8081"),
        help="audit service (PHOIHOP_AUDIT_URL)",
    )
    p.add_argument(
        "--api-key",
        default=env("PHOIHOP_API_KEY"),
        help="key allowed to read the trail: the submitter's, the assignee's or a "
        "supervisor's (PHOIHOP_API_KEY, default dev-<submitter>)",
    )
    p.add_argument(
        "--submitter",
        default=env("PHOIHOP_SUBMITTER", "UBMTTQ_TINH"),
        help="submitting agency's code (PHOIHOP_SUBMITTER)",
    )
    p.add_argument(
        "--locality",
        default=env("PHOIHOP_LOCALITY", "xa-an-binh"),
        help="administrative unit code (PHOIHOP_LOCALITY)",
    )
    p.add_argument(
        "--text",
        default=env("PHOIHOP_TEXT", text),
        help="the recommendation (PHOIHOP_TEXT; a road repair, varied per run)",
    )
    p.add_argument(
        "--webhook-secret",
        default=env("PHOIHOP_WEBHOOK_SECRET"),
        help="the subscription's secret, whsec_... (PHOIHOP_WEBHOOK_SECRET)",
    )
    p.add_argument(
        "--webhook-host",
        default=env("PHOIHOP_WEBHOOK_HOST", "127.0.0.1"),
        help="address to listen on (PHOIHOP_WEBHOOK_HOST)",
    )
    p.add_argument(
        "--webhook-port",
        type=int,
        default=int(env("PHOIHOP_WEBHOOK_PORT", "8091")),
        help="port to listen on (PHOIHOP_WEBHOOK_PORT)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=float(env("PHOIHOP_TIMEOUT", "60")),
        help="seconds to wait for each step (PHOIHOP_TIMEOUT)",
    )
    args = p.parse_args(argv)  # fmt: skip
    if not (args.webhook_secret or "").startswith("whsec_"):
        p.error("--webhook-secret / PHOIHOP_WEBHOOK_SECRET (whsec_...) is required")
    args.api_key = args.api_key or f"dev-{args.submitter}"
    args.audit_url = args.audit_url.rstrip("/")
    return args


def log(message: str) -> None:
    print(f"[python-example] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- webhooks


class WebhookReceiver:
    """An HTTP server that verifies every delivery and queues the verified CloudEvents."""

    def __init__(self, *, secret: str, host: str, port: int) -> None:
        self.webhook = Webhook(secret)
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    # the raw bytes, before any parsing: the signature covers the body as sent
                    event = receiver.webhook.verify(body, headers)
                except WebhookVerificationError as exc:
                    receiver.refused += 1
                    log(f"webhook refused ({exc}); webhook-id {headers.get('webhook-id')}")
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not headers.get("content-type", "").startswith("application/cloudevents+json"):
                    log(f"unexpected content-type {headers.get('content-type')}")
                # 2xx = delivered. Retries keep the webhook-id: de-duplicate on it.
                self.send_response(204)
                self.end_headers()
                receiver.events.put((headers["webhook-id"], event))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------- Kafka


@dataclass
class Watch:
    """A consumer without a group (assigned partitions, from now on): `received` and dead letters.

    The `received` event tells a Kafka submitter its recommendation id (`recommendation_id`,
    also `ce_subject` and the key); the dead-letter topic tells why a record was refused
    (`dlq_reason`, `dlq_detail` headers, the original ce_* headers kept).
    """

    consumer: Consumer
    readable: frozenset[str]  # the topics this principal may read (assigned)
    # `received` events by (submitted_by, source_ref)
    received: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dead: dict[str, dict[str, str]] = field(default_factory=dict)  # dlq headers by ce_id

    @classmethod
    def start(cls, *, bootstrap: str, topics: list[str]) -> Watch:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"example-python-{uuid.uuid4()}",  # required; never joined
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
            }
        )
        assignment = []
        readable = set()
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=15).topics[topic]
            if meta.error is not None:
                # e.g. TOPIC_AUTHORIZATION_FAILED: on a production cluster an agency's
                # principal reads the canonical topics, not the dead-letter topic
                log(f"not reading {topic}: {meta.error}")
                continue
            readable.add(topic)
            for partition in meta.partitions:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=15
                )
                assignment.append(TopicPartition(topic, partition, high))
        consumer.assign(assignment)
        return cls(consumer, frozenset(readable))

    def poll(self, seconds: float = 0.2) -> None:
        """Read what arrived; remember our `received` events and dead letters."""
        for message in self.consumer.consume(num_messages=500, timeout=seconds):
            self._one(message)

    def _one(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log(f"consumer: {error}")
            return
        raw = message.headers() or []  # a list of (name, bytes) pairs
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = {
            str(k): v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")
            for k, v in pairs
        }
        if "dlq_reason" in headers:
            if "ce_id" in headers:
                self.dead[headers["ce_id"]] = headers
            return
        if headers.get("ce_type", "").endswith(".received.v1"):
            data = json.loads(message.value() or b"{}")
            if data.get("source_ref"):
                self.received[(str(data.get("submitted_by")), data["source_ref"])] = data

    def refused(self, ce_ids: list[str]) -> None:
        """Fail with the dead-letter reason if any of these records was dead-lettered."""
        for ce_id in ce_ids:
            dlq = self.dead.get(ce_id)
            if dlq is not None:
                raise RoundTripError(
                    f"record {ce_id} was dead-lettered by {dlq.get('dlq_service')}: "
                    f"{dlq.get('dlq_reason')}: {dlq.get('dlq_detail')}"
                )


def produce(producer: Producer, *, topic: str, key: str, value: dict[str, Any],
            headers: dict[str, str]) -> None:  # fmt: skip
    """Produce one record and wait for the broker's acknowledgement."""
    errors: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            where = f"partition {message.partition()} offset {message.offset()}"
            log(f"  acknowledged: {topic} {where}")

    producer.produce(
        topic,
        key=key.encode(),
        value=json.dumps(value, ensure_ascii=False).encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
        on_delivery=delivered,
    )
    if producer.flush(30) > 0:
        raise RoundTripError(f"{topic}: not acknowledged within 30 s")
    if errors:
        raise RoundTripError(f"{topic}: {errors[0]}")


# ------------------------------------------------------------------------------- the flow


def wait(what: str, seconds: float, check: Any, watch: Watch, ce_ids: list[str]) -> Any:
    """Call `check` until it returns something, failing fast on a dead letter of ours."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watch.poll()
        watch.refused(ce_ids)
        found = check()
        if found:
            return found
    raise RoundTripError(f"no {what} within {seconds:g} s")


def round_trip(args: argparse.Namespace) -> dict[str, Any]:
    prefix = args.topic_prefix
    submissions, responses = f"{prefix}.inbound.submissions", f"{prefix}.inbound.responses"
    receiver = WebhookReceiver(
        secret=args.webhook_secret, host=args.webhook_host, port=args.webhook_port
    ).start()
    log(f"webhook receiver on http://{args.webhook_host}:{args.webhook_port}/")
    watch = Watch.start(
        bootstrap=args.bootstrap,
        topics=[f"{prefix}.recommendation.received", f"{prefix}.deadletter"],
    )
    # No `partitioner` setting: librdkafka's default (CRC32 of the key). The bus does not
    # depend on the producer's partitioner.
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    http = httpx.Client(base_url=args.audit_url, headers={"X-API-Key": args.api_key}, timeout=10.0)
    try:
        # --- 1. submit over Kafka
        idempotency_key = f"example-python-{uuid.uuid4()}"
        source_ref = f"PY-EXAMPLE/{idempotency_key[-12:]}"
        rec_id = recommendation_id(args.submitter, idempotency_key)
        headers = ce_headers(ce_type=SUBMISSION_TYPE, source=f"/agency/{args.submitter}")
        sent = [headers["ce_id"]]
        produce(
            producer,
            topic=submissions,
            key=idempotency_key,  # free on this topic; the bus derives the id itself
            value={
                "kind": "kien_nghi",
                "channel": "tiep_xuc_cu_tri",
                "locality": args.locality,
                "text": args.text,
                "submitted_at": datetime.now(UTC).isoformat(),
                "source_ref": source_ref,
                "submitted_by": args.submitter,  # must be the sending agency's own code
                "idempotency_key": idempotency_key,  # decides the recommendation id
            },
            headers=headers,
        )
        log(f"submitted {idempotency_key}; computed recommendation id {rec_id}")

        if f"{prefix}.recommendation.received" in watch.readable:
            received = wait(
                f"received event for {source_ref}",
                args.timeout,
                lambda: watch.received.get((args.submitter, source_ref)),
                watch,
                sent,
            )
            if received["recommendation_id"] != rec_id:
                found = received["recommendation_id"]
                raise RoundTripError(f"received {found}, computed {rec_id}")
            log(f"received event confirms recommendation id {rec_id}")

        # --- 2. the signed `assigned` webhook
        def assigned() -> tuple[str, dict[str, Any]] | None:
            while True:
                try:
                    webhook_id, event = receiver.events.get_nowait()
                except queue.Empty:
                    return None
                if event.get("type") == ASSIGNED_TYPE and event.get("subject") == rec_id:
                    return webhook_id, event

        def refused_note() -> str:
            return f" ({receiver.refused} refused)" if receiver.refused else ""

        try:
            webhook_id, event = wait(
                f"assigned webhook for {rec_id}", args.timeout, assigned, watch, sent
            )
        except RoundTripError as exc:
            raise RoundTripError(f"{exc}{refused_note()}") from None
        assignee = event["data"]["agency"]
        log(
            f"verified webhook {webhook_id}: assigned to {assignee} (category "
            f"{event['data']['category']}, level {event['data']['level']}, "
            f"deadline {event['data']['deadline']})"
        )

        # --- 3. answer over Kafka as the assignee; key = recommendation id
        answer = f"{assignee} đã đưa tuyến đường vào kế hoạch sửa chữa quý III ({rec_id[:8]})."
        response_id = f"{assignee}-answer-{uuid.uuid4()}"
        headers = ce_headers(ce_type=RESPONSE_TYPE, source=f"/agency/{assignee}", subject=rec_id)
        sent.append(headers["ce_id"])
        produce(
            producer,
            topic=responses,
            key=rec_id,
            value={
                "response_id": response_id,  # the agency's own id: a re-sent response applies once
                "recommendation_id": rec_id,
                "agency": assignee,
                "action": "answer",
                "text": answer,
                "responded_at": datetime.now(UTC).isoformat(),
            },
            headers=headers,
        )
        log(f"answered {rec_id} (response {response_id})")

        # --- 4. the trail over HTTP
        def answered_trail() -> dict[str, Any] | None:
            resp = http.get(f"/v1/recommendations/{rec_id}/trail")
            if resp.status_code == 404:  # not recorded yet (or not visible to this key)
                return None
            body = resp.json()
            if resp.status_code != 200:  # {"error": reason, "detail": ...}
                raise RoundTripError(f"audit answered {resp.status_code}: {body.get('error')}: "
                              f"{body.get('detail')}")  # fmt: skip
            return body if any(e["type"] == "answered" for e in body["events"]) else None

        trail = wait(f"answer in the trail of {rec_id}", args.timeout, answered_trail, watch, sent)
        types = [e["type"] for e in trail["events"]]
        log(f"trail of {rec_id}: {' → '.join(types)}")
        if types != ["received", "assigned", "answered"]:
            raise RoundTripError(f"trail is {types}")
        if [e["sequence"] for e in trail["events"]] != [1, 2, 3]:
            raise RoundTripError("sequences are not 1, 2, 3")
        data = trail["events"][2]["data"]
        if data["agency"] != assignee or data["text"] != answer:
            raise RoundTripError(f"the trail's answer is {data}")
        return {
            "ok": True,
            "recommendation_id": rec_id,
            "idempotency_key": idempotency_key,
            "assignee": assignee,
            "webhook_id": webhook_id,
            "response_id": response_id,
            "answer": answer,
            "trail": types,
        }
    finally:
        http.close()
        producer.flush(5)
        watch.consumer.close()
        receiver.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = round_trip(args)
    except (RoundTripError, KafkaException, httpx.HTTPError, OSError) as exc:
        log(f"FAILED: {exc}")
        print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
