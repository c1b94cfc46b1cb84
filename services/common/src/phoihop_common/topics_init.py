"""Create every topic of the registry on a Kafka cluster (the deployment's init step).

`python -m phoihop_common.topics_init`, configured by `PHOIHOP_KAFKA_*` env vars, e.g.
`PHOIHOP_KAFKA_BOOTSTRAP=kafka-1:9092 PHOIHOP_KAFKA_TOPIC_PARTITIONS=12
PHOIHOP_KAFKA_TOPIC_REPLICATION=3`. Topics that already exist are left as they are.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic_settings import BaseSettings, SettingsConfigDict

from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_schemas.topics import ALL_TOPICS


class TopicsInitSettings(BaseSettings, KafkaSettings):
    """Kafka settings of the init step (env prefix `PHOIHOP_`, e.g. `PHOIHOP_KAFKA_BOOTSTRAP`)."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_", extra="ignore")

    attempts: int = 120


def main() -> int:
    """Create the missing topics and print them; exit 1 if the cluster is unreachable."""
    settings = TopicsInitSettings()
    try:
        created = asyncio.run(ensure_topics(settings, ALL_TOPICS, attempts=settings.attempts))
    except RuntimeError as exc:
        print(f"topics_init: {exc}", file=sys.stderr)
        return 1
    print(
        f"topics_init: {len(ALL_TOPICS)} topics in the registry, created {len(created)} "
        f"(partitions={settings.kafka_topic_partitions}, "
        f"replication={settings.kafka_topic_replication}): {', '.join(created) or '-'}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
