"""The running service: database, Kafka clients, consumer, dispatcher and outcome publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine

from phoihop_common.auth import ApiKeys
from phoihop_common.config import Reference, load_reference
from phoihop_common.http import Readiness, readiness
from phoihop_common.kafka import ensure_topics, producer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.pii import load_pii_cipher
from phoihop_common.shutdown import bounded, cancel_all
from phoihop_notify import store
from phoihop_notify.channels import Channel, EmailChannel, WebhookChannel
from phoihop_notify.config import load_subscriptions
from phoihop_notify.consumer import EventConsumer
from phoihop_notify.dispatcher import Dispatcher
from phoihop_notify.metrics import NotifyMetrics, notify_metrics
from phoihop_notify.publisher import OutcomePublisher
from phoihop_notify.settings import NotifySettings

log = get_logger(__name__)


@dataclass
class Runtime:
    """Everything notify runs, started and stopped together."""

    settings: NotifySettings
    engine: Engine
    reference: Reference
    api_keys: ApiKeys
    metrics: NotifyMetrics
    producer: AIOKafkaProducer
    channels: dict[str, Channel]
    consumer: EventConsumer
    dispatcher: Dispatcher
    publisher: OutcomePublisher
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls, settings: NotifySettings, *, channels: Mapping[str, Channel] | None = None
    ) -> Runtime:
        """Migrate, seed config subscriptions, connect to Kafka and start the loops."""
        config_dir = settings.resolved_config_dir
        cipher = load_pii_cipher(
            settings,
            service="notify",
            production=settings.environment == "production",
            dev_dir=settings.pii_dev_dir,
        )
        reference = load_reference(config_dir)
        subs = load_subscriptions(config_dir, reference=reference)
        api_keys = ApiKeys.load(settings.api_keys_path())
        engine = store.make_engine(settings.database_url)
        await asyncio.to_thread(store.migrate, engine)
        seeded = await asyncio.to_thread(store.seed, engine, config=subs, now=datetime.now(UTC))
        log.info("config_seeded", subscriptions=seeded, config_dir=str(config_dir))
        await ensure_topics(settings)
        metrics = notify_metrics()
        all_channels: dict[str, Channel] = {
            "webhook": WebhookChannel(
                timeout=settings.request_timeout,
                max_connections=settings.dispatch_concurrency,
                per_host=settings.endpoint_concurrency,
                backend=settings.webhook_client,
            ),
            "email": EmailChannel(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                timeout=settings.smtp_timeout,
            ),
        }
        all_channels.update(channels or {})
        producer = AIOKafkaProducer(**producer_kwargs(settings))
        await producer.start()
        publisher = OutcomePublisher(
            engine=engine, producer=producer, metrics=metrics, linger=settings.outcome_linger
        )
        dispatcher = Dispatcher(
            settings=settings,
            engine=engine,
            channels=all_channels,
            metrics=metrics,
            contacts=subs.contacts,
            on_outcome=publisher.wake,
            cipher=cipher,
            reference=reference,
        )
        consumer = EventConsumer(
            settings=settings,
            engine=engine,
            producer=producer,
            metrics=metrics,
            on_new_deliveries=dispatcher.wake,
        )
        await consumer.start()
        runtime = cls(
            settings=settings,
            engine=engine,
            reference=reference,
            api_keys=api_keys,
            metrics=metrics,
            producer=producer,
            channels=all_channels,
            consumer=consumer,
            dispatcher=dispatcher,
            publisher=publisher,
        )
        runtime.tasks = [
            asyncio.create_task(consumer.run(), name="notify-consumer"),
            asyncio.create_task(dispatcher.run(), name="notify-dispatcher"),
            asyncio.create_task(publisher.run(), name="notify-publisher"),
        ]
        for task in runtime.tasks:
            task.add_done_callback(_report_exit)
        return runtime

    def wake_dispatcher(self) -> None:
        """Deliveries became due (replay)."""
        self.dispatcher.wake()

    async def ready(self) -> Readiness:
        """Readiness: loops alive, consumer assigned, database reachable, nothing stuck."""
        checks = {
            "loops": not any(t.done() for t in self.tasks),
            "consumer": self.consumer.assigned,
            "database": await asyncio.to_thread(store.ping, self.engine),
        }
        problem = self.consumer.kit.problem()
        return readiness(checks, problem=None if problem is None else ("consumer_stuck", problem))

    async def stop(self) -> None:
        """Stop loops, leave the group, flush the producer, close connections."""
        # Each step is bounded, so a stop ends within ~25 s whatever the broker or a peer does.
        await cancel_all("loops", self.tasks, seconds=8.0)
        await self.consumer.stop()  # the consumer kit bounds its own leave (10 s)
        await bounded("producer", self.producer.stop(), seconds=5.0)
        webhook = self.channels.get("webhook")
        if isinstance(webhook, WebhookChannel):
            await bounded("webhook_client", webhook.close(), seconds=2.0)
        self.engine.dispose()


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("loop_crashed", task=task.get_name(), error=repr(task.exception()))
