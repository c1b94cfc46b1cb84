"""Kafka client settings shared by every service, and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import BaseModel, SecretStr

from phoihop_common.logs import get_logger
from phoihop_schemas.topics import ALL_TOPICS, Topic

log = get_logger(__name__)


class KafkaSettings(BaseModel):
    """Connection and security settings of a Kafka client (embedded in each service's settings)."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_fetch_max_wait_ms: int = 50  # aiokafka's 500 ms default adds latency at low rates
    kafka_fetch_min_bytes: int = 1
    # a produce request carries what was sent within this time (Tansu's cost is per request)
    kafka_producer_linger_ms: int = 5
    kafka_topic_partitions: int = 4
    kafka_topic_replication: int = 1


def ssl_context(s: KafkaSettings) -> ssl.SSLContext | None:
    if s.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=s.kafka_ssl_cafile)
    if s.kafka_ssl_certfile:
        ctx.load_cert_chain(s.kafka_ssl_certfile, s.kafka_ssl_keyfile)
    return ctx


def client_kwargs(s: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": s.kafka_bootstrap,
        "security_protocol": s.kafka_security_protocol,
    }
    ctx = ssl_context(s)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if s.kafka_sasl_mechanism:
        kwargs["sasl_mechanism"] = s.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = s.kafka_sasl_username
        kwargs["sasl_plain_password"] = (
            s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
        )
    return kwargs


def consumer_kwargs(s: KafkaSettings) -> dict[str, Any]:
    """Consumer settings: client settings plus a short fetch wait."""
    return client_kwargs(s) | {
        "fetch_max_wait_ms": s.kafka_fetch_max_wait_ms,
        "fetch_min_bytes": s.kafka_fetch_min_bytes,
    }


def producer_kwargs(s: KafkaSettings) -> dict[str, Any]:
    """Producer settings: acks=all, no idempotence (Tansu lacks InitProducerId)."""
    return client_kwargs(s) | {
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": s.kafka_producer_linger_ms,
    }


async def ensure_topics(
    s: KafkaSettings, topics: tuple[Topic, ...] = ALL_TOPICS, *, attempts: int = 30
) -> list[str]:
    """Create the bus's topics if missing (Tansu needs them up front); return those created.

    Each topic is created with its `Topic.config` (the inbound topics' `max.message.bytes`).
    Tansu 0.6 stores topic configs (DescribeConfigs returns them) without enforcing the
    size limit. A broker that refuses a config (invalid, or forbidden by a create-topic
    policy) gets that topic again without it, with a warning: the topic matters more than
    its limit. Existing topics are left as they are (configs are not altered).
    """
    last: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(**client_kwargs(s))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    refused = _config_refused(await admin.create_topics(_new(s, missing)))
                    if refused:
                        log.warning("topic_configs_refused", topics=sorted(refused))
                        retry = [t for t in missing if t.name in refused]
                        await admin.create_topics(_new(s, retry, with_config=False))
            return [t.name for t in missing]
        except KafkaError as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise RuntimeError(f"could not create topics on {s.kafka_bootstrap}: {last}")


# CreateTopics error codes meaning "this config is not accepted here".
_CONFIG_ERRORS = frozenset({40, 44})  # INVALID_CONFIG, POLICY_VIOLATION


def _new(s: KafkaSettings, topics: list[Topic], *, with_config: bool = True) -> list[NewTopic]:
    return [
        NewTopic(
            t.name,
            s.kafka_topic_partitions,
            s.kafka_topic_replication,
            topic_configs=t.config if with_config else {},
        )
        for t in topics
    ]


def _config_refused(response: Any) -> set[str]:
    """Names of the topics a CreateTopics response refused because of their configs."""
    refused: set[str] = set()
    for error in getattr(response, "topic_errors", ()):
        name, code = error[0], error[1]
        if code in _CONFIG_ERRORS:
            refused.add(name)
    return refused
