"""The Kafka producer of ingest: connects in the background, produces with acks=all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from phoihop_common.kafka import ensure_topics, producer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.metrics import ServiceMetrics
from phoihop_common.shutdown import bounded
from phoihop_ingest.exceptions import BrokerUnavailableError
from phoihop_ingest.settings import IngestSettings
from phoihop_schemas.codec import Record
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER, INBOUND_RESPONSES, INBOUND_SUBMISSIONS

log = get_logger(__name__)

TOPICS = (INBOUND_SUBMISSIONS, INBOUND_RESPONSES, CANONICAL["received"], DEAD_LETTER)


class Publisher:
    """Owns one AIOKafkaProducer; `publish` returns only once every record is acknowledged."""

    def __init__(self, *, settings: IngestSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.producer: AIOKafkaProducer | None = None
        self._started = asyncio.Event()
        self._produced: dict[str, Any] = {}

    @property
    def ready(self) -> bool:
        """True once the producer is connected."""
        return self.producer is not None

    async def wait_started(self) -> AIOKafkaProducer:
        """Wait until connected."""
        await self._started.wait()
        assert self.producer is not None
        return self.producer

    async def connect_forever(self) -> None:
        """Start the producer, retrying until the broker answers (runs as a task)."""
        delay = 0.5
        while self.producer is None:
            producer = AIOKafkaProducer(**producer_kwargs(self.settings), request_timeout_ms=15_000)
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                log.warning("broker_unreachable", error=str(exc), retry_in=delay)
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await ensure_topics(self.settings, TOPICS, attempts=3)
            except RuntimeError as exc:
                log.warning("topics_not_ensured", error=str(exc))
            self.producer = producer
            self._started.set()
            log.info("producer_started", bootstrap=self.settings.kafka_bootstrap)

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Produce records and wait for every acknowledgement, or raise BrokerUnavailableError."""
        if not records:
            return
        producer = self.producer
        if producer is None:
            raise BrokerUnavailableError("broker_unavailable", "not connected to the broker")
        try:
            async with asyncio.timeout(self.settings.produce_timeout):
                futures = [
                    await producer.send(topic, value=r.value, key=r.key, headers=r.headers)
                    for r in records
                ]
                if len(futures) == 1:
                    await futures[0]
                else:
                    await asyncio.gather(*futures)
        except TimeoutError as exc:
            raise BrokerUnavailableError(
                "broker_unavailable", f"no acknowledgement within {self.settings.produce_timeout}s"
            ) from exc
        except KafkaError as exc:
            raise BrokerUnavailableError("broker_unavailable", str(exc)[:300]) from exc
        counter = self._produced.get(topic)
        if counter is None:
            counter = self._produced[topic] = self.metrics.produced.labels(topic)
        counter.inc(len(records))

    async def close(self) -> None:
        """Flush and stop."""
        if self.producer is not None:
            # Bounded: with the broker gone, a flush would wait for the request timeout.
            await bounded("producer", self.producer.stop(), seconds=self.settings.produce_timeout)
            self.producer = None
