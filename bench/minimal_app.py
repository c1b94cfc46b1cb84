"""The ceiling for ingest: a minimal FastAPI + aiokafka endpoint (POST → acks=all → 202).

`python -m bench.minimal_app --port P --bootstrap B --topic T`, served by uvicorn like ingest.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from phoihop_common.kafka import KafkaSettings, producer_kwargs


def create_app(*, bootstrap: str, topic: str) -> FastAPI:
    """The endpoint: read the body, send it with acks=all, answer 202 with a new id."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(**producer_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)))
        await producer.start()
        app.state.producer = producer
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/recommendations", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        body = await request.body()
        rec_id = str(uuid.uuid4())
        producer: AIOKafkaProducer = request.app.state.producer
        await producer.send_and_wait(topic, value=body, key=rec_id.encode())
        return JSONResponse({"id": rec_id}, status_code=202)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the minimal endpoint on loopback."""
    parser = argparse.ArgumentParser(prog="bench.minimal_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args(argv)
    app = create_app(bootstrap=args.bootstrap, topic=args.topic)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
