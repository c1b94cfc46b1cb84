"""Routing settings: environment variables `PHOIHOP_ROUTING_*` (Kafka fields included)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from phoihop_common.config import default_config_dir
from phoihop_common.kafka import KafkaSettings
from phoihop_common.production import ProductionSettings


class Settings(BaseSettings, KafkaSettings, ProductionSettings):
    """Settings of the routing worker."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_ROUTING_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8083
    data_dir: Path = Path("var/routing")
    # Table store: `memory://` (state rebuilt from the changelog topics at start) or
    # `rocksdb://` in production (through `rocksdict`, a dependency of phoihop-routing).
    store: str = "memory://"
    timer_interval: float = Field(default=1.0, gt=0)
    # below this classifier confidence a case goes to triage; None: the rules file's
    # `triage_below` (0.5 when the classifier has none)
    triage_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    max_hops: int = Field(default=3, ge=1)
    triage_agency: str = "TT_HDND"
    superior: str | None = "UBND_TINH"
    superiors: dict[str, str] = Field(default_factory=dict)
    config_dir: Path | None = None
    rules_path: Path | None = None
    broker_session_timeout: float = 10.0
    # each agent sleeps until a record arrives, then takes up to `batch_max` records,
    # waiting at most `batch_within` seconds for more: one wait for the broker's acks per
    # batch instead of per record (`streams.RoutingStream.take_ready`)
    batch_max: int = Field(default=500, ge=1)
    batch_within: float = Field(default=0.01, ge=0)
    log_level: str = "INFO"

    reads_api_keys: ClassVar[bool] = False  # no agency calls routing

    def resolved_config_dir(self) -> Path:
        """`config_dir`, else `PHOIHOP_CONFIG_DIR`, else the checkout's deploy/config."""
        return self.config_dir or default_config_dir()
