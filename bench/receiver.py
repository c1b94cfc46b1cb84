"""Webhook receiver in its own process, so the load generator's GIL doesn't delay receipts.

`python -m bench.receiver --out FILE`: prints its port on the first stdout line, then appends
one tab-separated line per request: time, status, path, webhook-id, type, subject, event id.
Stops on SIGTERM or when stdin closes (the benchmark died).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from aiohttp import web

from phoihop_testkit.webhook_receiver import Delivery


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
        asyncio.run(serve(out))
    return 0


async def serve(out: TextIO) -> None:
    """Record every request into `out` until SIGTERM or end of stdin (aiohttp, keep-alive).

    An asyncio server: the threaded test receiver tops out at a few hundred requests/s,
    which would cap the end-to-end figure instead of measuring the bus.
    """

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        delivery = Delivery(
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            200,
            time.time(),
        )
        out.write(line_of(delivery))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    fd = sys.stdin.fileno()

    def stdin_readable() -> None:
        if not os.read(fd, 65536):  # end of stdin: the benchmark is gone
            done.set()

    loop.add_reader(fd, stdin_readable)
    await done.wait()
    out.flush()
    await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
