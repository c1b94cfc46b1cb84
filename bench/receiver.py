"""Webhook receiver in its own process, so the load generator's GIL doesn't delay receipts.

`python -m bench.receiver --out FILE`: prints its port on the first stdout line, then appends
one tab-separated line per request: time, status, path, webhook-id, type, subject, event id.
Stops on SIGTERM or when stdin closes (the benchmark died).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from tests.webhook_receiver import Delivery, WebhookReceiver


def line_of(delivery: Delivery) -> str:
    """One output line for a delivery."""
    try:
        payload = delivery.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    fields = (
        f"{delivery.received_at:.6f}",
        str(delivery.status),
        delivery.path,
        delivery.headers.get("webhook-id", ""),
        str(payload.get("type", "")),
        str(payload.get("subject", "")),
        str(payload.get("id", "")),
    )
    return "\t".join(f.replace("\t", " ").replace("\n", " ") for f in fields) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until told to stop."""
    parser = argparse.ArgumentParser(prog="bench.receiver")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with Path(args.out).open("a", encoding="utf-8", buffering=1) as out:
        serve(out)
    return 0


def serve(out: TextIO) -> None:
    """Record every request into `out` until SIGTERM or end of stdin."""

    def record(delivery: Delivery) -> None:
        out.write(line_of(delivery))

    receiver = WebhookReceiver(on_delivery=record, keep=False, keep_alive=True).start()
    port = receiver.url("/").split(":")[2].split("/")[0]
    print(port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    receiver.stop()


if __name__ == "__main__":
    raise SystemExit(main())
