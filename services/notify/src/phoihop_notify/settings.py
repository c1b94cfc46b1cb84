"""Settings of the notify service (env prefix `PHOIHOP_NOTIFY_`)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from phoihop_common.config import default_config_dir
from phoihop_common.consumer import ConsumerPolicy
from phoihop_common.kafka import KafkaSettings
from phoihop_common.pii import PiiSettings, dev_key_dir
from phoihop_common.production import ProductionSettings

DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class NotifySettings(BaseSettings, KafkaSettings, ConsumerPolicy, PiiSettings, ProductionSettings):
    """Everything notify reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_NOTIFY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8082
    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/notify.db"
    config_dir: Path | None = None  # falls back to PHOIHOP_CONFIG_DIR / deploy/config
    consumer_group: str = "phoihop-notify"
    # batch what arrives within 20 ms into one intake transaction (adds at most 20 ms to a
    # webhook's latency at low rates; saves a transaction per event under load)
    consumer_linger_ms: int = 20
    log_level: str = "INFO"
    # CIDRs exempt from the refusal of private, loopback and link-local webhook targets.
    allowed_networks: Annotated[tuple[str, ...], NoDecode] = ()
    # Seconds before each attempt: the first entry is the first attempt (normally 0).
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    request_timeout: float = 15.0
    disable_after: timedelta = timedelta(days=5)  # env: seconds or ISO 8601 (P5D)
    # Sends per second to one endpoint (token bucket, bursts up to the same number).
    rate_limit_per_second: float = 2000.0
    max_retry_after: float = 86_400.0
    # A delivery waits for the recommendation's earlier events at most this long.
    order_hold: float = 60.0
    # Seconds between looks for retries that became due (new deliveries wake it at once).
    dispatch_interval: float = 0.5
    dispatch_batch: int = 500  # deliveries claimed per database round trip, at most
    # Seconds the outcome publisher lets outcomes gather once woken: outcome events are
    # off the path to the agency (the webhook has gone), so batching them costs no one.
    outcome_linger: float = Field(default=0.2, ge=0)
    # Seconds finished attempts gather before one transaction records them: under load one
    # write serves several webhooks instead of one each (the agency already has its call;
    # a later event of the same case, and the delivery's listed status, wait this much
    # longer). 0: record what has finished at once, as it comes.
    record_linger: float = Field(default=0.0, ge=0)
    dispatch_concurrency: int = 64  # attempts in flight, all endpoints together
    endpoint_concurrency: int = 16  # attempts in flight to one endpoint (its connections)
    webhook_client: Literal["auto", "aiohttp", "httpx"] = "auto"  # auto: aiohttp if installed
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "phoihop@localhost"
    smtp_timeout: float = 15.0

    production_secrets: ClassVar[tuple[str, ...]] = ("pii_key",)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        nets = _split(value)
        for net in nets:
            ipaddress.ip_network(net, strict=False)
        return nets

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        parts = _split(value)
        if not parts:
            raise ValueError("retry_schedule needs at least one entry")
        return [float(p) for p in parts]

    @field_validator("disable_after", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, str) and value.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(value))
        return value

    @property
    def pii_dev_dir(self) -> Path:
        """Where the development PII key lives (shared with ingest and audit by `make run`)."""
        return dev_key_dir(self.database_url)

    @property
    def resolved_config_dir(self) -> Path:
        """The configuration directory in use."""
        return self.config_dir or default_config_dir()

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Allowed networks, parsed."""
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)

    @property
    def max_attempts(self) -> int:
        """Attempts in one round of the schedule."""
        return len(self.retry_schedule)
