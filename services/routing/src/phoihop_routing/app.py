"""Wiring of the routing worker: the faust app, its topics, tables, agents, timer and pages.

- Faust app id `<PHOIHOP_TOPIC_PREFIX>-routing` (`phoihop-routing` by default): the consumer
  group and the prefix of the changelog topics faust creates for its tables.
- Tables `cases` (recommendation id -> `lifecycle.CaseState`, JSON) and `bucket-members`
  (`tables.member_key(bucket, case)` -> open case's signature), with changelog topics:
  state survives a restart. Writes name their changelog partition (`tables`), so the
  agents can take batches. Store `memory://` by default (rebuilt from the changelog at start);
  `rocksdb://` in production keeps a local copy in `data_dir` and only reads the tail of the
  changelog (through `rocksdict`; see `rocksdb_store.py` for why the store is subclassed).
- Delivery is at least once: Tansu has no transactions, so no `exactly_once`; the
  agents are idempotent instead (see `agents`). `broker_session_timeout` is lowered (10 s)
  so a killed worker's partitions move to a live one quickly.
- Agents (see `agents`): `routing-received` (`received`), `routing-dedup` (ROUTING_DEDUP),
  `routing-responses` (INBOUND_RESPONSES: checks agencies' responses and re-keys them onto
  ROUTING_COMMANDS with this app's producer) and `routing-cases` (ROUTING_COMMANDS +
  ROUTING_TIMERS). The case agent reads only topics routing writes itself, with faust's
  (aiokafka's murmur2) partitioner, so a response reaches the worker owning its case
  whatever partitioner the agency's Kafka client used.
- Topics are created up front by the stack (`phoihop_common.kafka.ensure_topics`); they
  and the tables use `kafka_topic_partitions` partitions, which keeps the topics consumed
  by the case agent co-partitioned with the `cases` changelog.
- Web server on `host:port` (8083): `/healthz`, `/readyz` (200 once the worker joined the
  consumer group and table recovery is done, `worker_ready`; a worker that got no partition,
  e.g. more workers than partitions, is ready too: it is a live standby; 503 with a `reason`
  while an agent is dead or crashed in the last minute, or a stage has retried one batch
  beyond `stuck_after`: `Routing.problem`), `/metrics`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.web import Request, Response, View

from phoihop_common.config import Reference, load_reference
from phoihop_common.http import readiness
from phoihop_common.kafka import KafkaSettings, ssl_context
from phoihop_common.metrics import metrics_response
from phoihop_routing import web
from phoihop_routing.agents import (
    AGENT_NAMES,
    STAGE_CASES,
    STAGE_DEDUP,
    STAGE_RECEIVED,
    STAGE_RESPONSES,
    Incoming,
    Pipeline,
    routing_metrics,
)
from phoihop_routing.classify import Classifier
from phoihop_routing.deadlines import WorkCalendar
from phoihop_routing.escalation import Ladder, Superiors
from phoihop_routing.exceptions import RoutingError
from phoihop_routing.lifecycle import Policy
from phoihop_routing.settings import Settings
from phoihop_routing.streams import RoutingStream
from phoihop_routing.tables import SignatureCodec, partitioned_table, store_url
from phoihop_schemas.topics import (
    CANONICAL,
    INBOUND_RESPONSES,
    PREFIX,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
    ROUTING_TIMERS,
)

APP_ID = f"{PREFIX}-routing"


class FaustOutbox:
    """Sends raw records through the faust app's producer.

    Straight to `app.producer` (faust's wrapper of the aiokafka producer): the records are
    bytes already, so faust's topic machinery (a future message, serializers, callbacks per
    record) would only add work.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Any = (),
    ) -> Any:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        return await self._app.producer.send(topic, key, value, None, None, list(headers))


def broker_credentials(s: KafkaSettings) -> Any:
    """Faust credentials for the Kafka security settings (None for PLAINTEXT)."""
    ctx = ssl_context(s)
    if s.kafka_sasl_mechanism:
        password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=password,
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def build_policy(settings: Settings, reference: Reference, classifier: Classifier) -> Policy:
    """The lifecycle policy of this deployment."""
    calendar = WorkCalendar(extra_days_off=reference.sla.extra_days_off)
    superiors = Superiors.from_reference(
        reference, default=settings.superior, overrides=settings.superiors
    )
    ladder = Ladder.from_policies(reference.sla, calendar=calendar, superiors=superiors)

    def agency_for(category: str, level: Any, locality: str) -> str:
        return classifier.agency_for(category=category, level=level, locality=locality)

    return Policy(
        sla=reference.sla,
        ladder=ladder,
        roles={a.code: frozenset(a.role) for a in reference.agencies},
        category_agency={c.code: c.agency for c in reference.categories},
        agency_for=agency_for,
        triage_agency=settings.triage_agency,
        triage_confidence=(
            settings.triage_confidence
            if settings.triage_confidence is not None
            else float(getattr(classifier, "triage_below", 0.5))
        ),
        max_hops=settings.max_hops,
    )


@dataclass
class Routing:
    """The assembled worker: faust app, agents, tables and the pipeline they call."""

    app: faust.App
    settings: Settings
    pipeline: Pipeline
    received_agent: Any
    dedup_agent: Any
    case_agent: Any
    responses_agent: Any
    cases: Any
    buckets: Any

    def ready(self) -> bool:
        """Joined the group (with or without partitions) and table recovery done."""
        return worker_ready(self.app)

    def problem(self) -> str | None:
        """Why a started worker is not fit to run: an agent dead or crashed, a stage stuck."""
        agents = (self.received_agent, self.dedup_agent, self.responses_agent, self.case_agent)
        for agent in agents:
            problem = agent_problem(agent)
            if problem is not None:
                return problem
        return self.pipeline.problem()

    def active_partitions(self) -> set[int]:
        """Partitions of the case topics this worker actively owns."""
        return {
            tp.partition
            for tp in self.app.consumer.assignment()
            if tp.topic == ROUTING_COMMANDS.name
        }


def worker_ready(app: Any) -> bool:
    """Ready: not rebalancing, table recovery done, and the group assignment received.

    Faust sets `app.unassigned` when the group gave this worker no partition (more workers
    than partitions); recovery then completes with an empty assignment and the worker is a
    ready standby. Before the first assignment it is neither assigned nor `unassigned`.
    """
    if app.rebalancing:
        return False
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or not recovery.completed.is_set():
        return False
    if app.unassigned:
        return True
    try:
        return bool(app.consumer.assignment())
    except ConsumerNotStarted:
        return False


def agent_problem(agent: Any) -> str | None:
    """Why a faust agent is not processing: one of its actors crashed or its task ended."""
    for actor in list(getattr(agent, "_actors", ())):
        if getattr(actor, "crashed", False):
            return f"agent {agent.name} crashed: {getattr(actor, 'crash_reason', None)!r}"[:500]
        task = getattr(actor, "actor_task", None)
        if task is not None and task.done():
            return f"agent {agent.name} is not running (its task ended)"
    return None


def create_app(
    settings: Settings | None = None,
    *,
    reference: Reference | None = None,
    classifier: Classifier | None = None,
    clock: Any = None,
) -> Routing:
    """Build the routing worker (nothing runs until the faust worker starts it)."""
    settings = settings or Settings()
    _use_routing_consumer()
    reference = reference or load_reference(settings.resolved_config_dir())
    classifier = classifier or Classifier.from_config(
        reference=reference, rules_path=settings.rules_path
    )
    app = _faust_app(settings)
    _KAFKA[app] = settings
    web.install(app.web, metrics_token=settings.metrics_token)
    metrics = routing_metrics()
    topics = _Topics.declare(app)
    cases = partitioned_table(app, "cases", default=None, key_type=str)
    # one entry per open case of a bucket (see `tables`), not one growing list per bucket
    buckets = partitioned_table(
        app, "bucket-members", default=None, key_type=str, value_serializer=SignatureCodec()
    )
    pipeline_kwargs: dict[str, Any] = {}
    if clock is not None:
        pipeline_kwargs["clock"] = clock
    pipeline = Pipeline(
        policy=build_policy(settings, reference, classifier),
        classifier=classifier,
        cases=cases,
        buckets=buckets,
        outbox=FaustOutbox(app),
        metrics=metrics,
        **pipeline_kwargs,
    )
    agents = _install_agents(app, pipeline, topics, settings)
    routing = Routing(
        app=app,
        settings=settings,
        pipeline=pipeline,
        received_agent=agents.received,
        dedup_agent=agents.dedup,
        case_agent=agents.cases,
        responses_agent=agents.responses,
        cases=cases,
        buckets=buckets,
    )
    _install_timer(routing)
    _install_pages(routing, metrics)
    return routing


def _faust_app(settings: Settings) -> faust.App:
    """The faust app of this deployment (its store checked, its data directory made)."""
    if settings.store.startswith("rocksdb") and importlib.util.find_spec("rocksdict") is None:
        raise RoutingError(
            "store rocksdb:// needs the rocksdict package; install it or use memory://"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        APP_ID,
        broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store=store_url(settings.store),
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.kafka_topic_partitions,
        topic_replication_factor=settings.kafka_topic_replication,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
        producer_linger=settings.kafka_producer_linger_ms / 1000,
        # table keys and values are JSON (faust's default); every topic is declared raw
        key_serializer="json",
        value_serializer="json",
        web_enabled=True,
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.port,
        autodiscover=False,
        Stream=RoutingStream,
    )


@dataclass(frozen=True)
class _Topics:
    """The topics the agents read (raw keys and values: the pipeline decodes them)."""

    received: Any
    dedup: Any
    responses: Any
    cases: Any  # only topics routing writes (murmur2 on the recommendation id)

    @classmethod
    def declare(cls, app: faust.App) -> _Topics:
        def raw_topic(*names: str) -> Any:
            return app.topic(*names, key_serializer="raw", value_serializer="raw")

        return cls(
            received=raw_topic(CANONICAL["received"].name),
            dedup=raw_topic(ROUTING_DEDUP.name),
            responses=raw_topic(INBOUND_RESPONSES.name),
            # never the agencies' topic: stage R re-keys their responses first
            cases=raw_topic(ROUTING_COMMANDS.name, ROUTING_TIMERS.name),
        )


@dataclass(frozen=True)
class _Agents:
    """The four faust agents, one per stage."""

    received: Any
    dedup: Any
    responses: Any
    cases: Any


def _install_agents(
    app: faust.App, pipeline: Pipeline, topics: _Topics, settings: Settings
) -> _Agents:
    """Register the agents: each hands the records of its stream to its pipeline stage."""
    batch_max, within = settings.batch_max, settings.batch_within

    def generation() -> int:
        return int(getattr(app, "consumer_generation_id", 0) or 0)

    # The pipeline's methods never raise on a record (see `agents`); an exception that still
    # escapes a body is recorded for readiness before faust's supervisor sees it.
    @app.agent(topics.received, name=AGENT_NAMES[STAGE_RECEIVED])
    async def received_agent(stream: Any) -> Any:
        try:
            async for events in stream.take_ready(batch_max, within):
                for event in events:
                    await pipeline.on_received(Incoming.of(event.message))
                    await asyncio.sleep(0)  # CPU-bound: let the other stages run in between
                yield len(events)
        except Exception as exc:
            pipeline.record_crash(STAGE_RECEIVED, exc)
            raise

    @app.agent(topics.dedup, name=AGENT_NAMES[STAGE_DEDUP])
    async def dedup_agent(stream: Any) -> Any:
        try:
            async for events in stream.take_ready(batch_max, within):
                if pipeline.bucket_generation != generation():
                    pipeline.rebuild_buckets(generation=generation())
                for event in events:
                    await pipeline.on_dedup(Incoming.of(event.message))
                    await asyncio.sleep(0)
                yield len(events)
        except Exception as exc:
            pipeline.record_crash(STAGE_DEDUP, exc)
            raise

    def batch_agent(
        topic: Any, stage: str, handle: Callable[[list[Incoming]], Awaitable[None]]
    ) -> Any:
        """An agent handing each batch of its stream, whole, to one pipeline method."""

        async def body(stream: Any) -> Any:
            try:
                async for events in stream.take_ready(batch_max, within):
                    await handle([Incoming.of(e.message) for e in events])
                    yield len(events)
            except Exception as exc:
                pipeline.record_crash(stage, exc)
                raise

        return app.agent(topic, name=AGENT_NAMES[stage])(body)

    return _Agents(
        received=received_agent,
        dedup=dedup_agent,
        responses=batch_agent(topics.responses, STAGE_RESPONSES, pipeline.on_responses),
        cases=batch_agent(topics.cases, STAGE_CASES, pipeline.on_cases),
    )


def _install_timer(routing: Routing) -> None:
    """The deadline scan: every `timer_interval`, ticks for the local cases that are due."""
    app, pipeline = routing.app, routing.pipeline

    @app.timer(interval=routing.settings.timer_interval)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        if not routing.ready():
            return
        generation = getattr(app, "consumer_generation_id", 0)
        if pipeline.index_generation != generation:
            pipeline.rebuild_index(
                active_partitions=routing.active_partitions(), generation=generation
            )
        await pipeline.scan_due()


def _install_pages(routing: Routing, metrics: Any) -> None:
    """The web pages: `/healthz`, `/readyz` and `/metrics`."""
    app = routing.app

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        if not routing.ready():
            ready = readiness(starting=True)
        else:
            problem = routing.problem()
            ready = readiness(
                {"worker": True},
                problem=None if problem is None else ("consumer_stuck", problem),
            )
        return self.json(ready.model_dump(mode="json"), status=ready.http_status)

    @app.page("/metrics")
    async def metrics_page(self: View, request: Request) -> Response:
        await _record_lag(app, metrics)
        prom = metrics_response()
        return self.bytes(bytes(prom.body), headers={"Content-Type": str(prom.media_type)})


class _ShortFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's worker consumer with a short fetch wait.

    faust hard-codes `fetch_max_wait_ms=1500`; a broker that holds an empty fetch for the
    full wait (Tansu does) then adds up to 1.5 s per hop, and routing has several hops
    (received → dedup → commands; responses → commands). The wait is the service's
    `kafka_fetch_max_wait_ms`, the minimum `kafka_fetch_min_bytes`, those of the app the
    consumer belongs to (`kafka_settings`); aiokafka reads them when the consumer starts.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        settings = kafka_settings(cast(faust.App, self.consumer.app))
        consumer._fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
        consumer._fetch_min_bytes = settings.kafka_fetch_min_bytes
        return consumer


class _RoutingConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with the short fetch wait and a seek that loses no record.

    After a rebalance faust (0.15.3, `tables.recovery`) resumes the stream partitions, seeks
    them to the committed offsets with the flow still running, then resumes its flow control,
    which empties every stream's queue. Records fetched during the seek are put in the
    queues and then dropped, while faust's read offsets (and, for a partition without a
    committed offset, aiokafka's position) are already past them: the fetch after the seek
    skips them, and faust even counts them as a gap to commit. A restarted worker with a
    backlog lost a few records per partition that way. Here the flow is stopped for the
    seek (faust resumes it right after, as it does after every seek), so nothing is
    delivered until the position and read offsets are the committed ones and the queues
    are empty; a partition without a committed offset goes back to its beginning
    (`consumer_auto_offset_reset` earliest), so what was dropped is fetched again.
    Delivery stays at least once: a record processed just before the seek comes again.
    """

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        if self.flow_active:
            self.stop_flow()
        await super().perform_seek()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            changelogs = self.app.tables.changelog_topics
            fresh = [
                tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
            ]
            if fresh:
                await self._thread.seek_to_beginning(*fresh)
        return committed


# per app (two routing apps in one process, as in tests, keep their own)
_KAFKA: weakref.WeakKeyDictionary[faust.App, KafkaSettings] = weakref.WeakKeyDictionary()


def kafka_settings(app: faust.App) -> KafkaSettings:
    """The Kafka settings of a routing app (the defaults for an app `create_app` did not make)."""
    return _KAFKA.get(app) or KafkaSettings()


def _use_routing_consumer() -> None:
    faust_aiokafka.Transport.Consumer = _RoutingConsumer


async def _record_lag(app: faust.App, metrics: Any) -> None:
    """Set the consumer-lag gauge of every assigned partition (scrape time is fresh enough)."""
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic.endswith("-changelog"):
            continue  # faust's own table changelogs, read only during recovery: not input lag
        try:
            end = consumer.highwater(tp)
            position = await consumer.position(tp)
        except (KeyError, AssertionError, RuntimeError):
            continue
        if end is None or position is None:
            continue
        metrics.service.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))
