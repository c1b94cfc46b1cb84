"""Settings of the ingest service (env `PHOIHOP_INGEST_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from phoihop_common.config import default_config_dir
from phoihop_common.consumer import ConsumerPolicy
from phoihop_common.kafka import KafkaSettings
from phoihop_common.pii import PiiSettings, dev_key_dir
from phoihop_common.production import ProductionSettings
from phoihop_schemas.events import MAX_TEXT_CHARS


class IngestSettings(BaseSettings, KafkaSettings, ConsumerPolicy, PiiSettings, ProductionSettings):
    """Everything ingest reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_INGEST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/ingest.db"
    audit_url: str = "http://127.0.0.1:8081"
    audit_timeout: float = Field(default=5.0, gt=0)
    config_dir: str | None = None
    max_text_chars: int = Field(default=MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    bulk_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    bulk_max_rows: int = Field(default=100_000, ge=1)
    bulk_batch_size: int = Field(default=500, ge=1)
    produce_timeout: float = Field(default=10.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    consumer_group: str = "phoihop-ingest"
    log_level: str = "INFO"

    production_secrets: ClassVar[tuple[str, ...]] = ("pii_key",)

    @property
    def pii_dev_dir(self) -> Path:
        """Where the development PII key lives (shared with audit and notify by `make run`)."""
        return dev_key_dir(self.database_url)

    def config_path(self) -> Path:
        """Directory of the reference data (`PHOIHOP_INGEST_CONFIG_DIR`, else the shared one)."""
        return Path(self.config_dir) if self.config_dir else default_config_dir()
