"""Settings of the audit service (env prefix `PHOIHOP_AUDIT_`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from phoihop_common.consumer import ConsumerPolicy
from phoihop_common.kafka import KafkaSettings
from phoihop_common.pii import PiiSettings
from phoihop_common.production import ProductionSettings


class AuditSettings(BaseSettings, KafkaSettings, ConsumerPolicy, PiiSettings, ProductionSettings):
    """Every setting of the audit service, read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_AUDIT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/audit.db"
    data_dir: Path | None = None
    signing_key: SecretStr | None = None
    trusted_public_keys: str = ""
    checkpoint_interval: float = 5.0
    timezone: str = "Asia/Ho_Chi_Minh"  # report periods and date filters are local dates
    config_dir: Path | None = None
    log_level: str = "INFO"
    consumer_group: str = "phoihop-audit"
    # one trail transaction and one commit for what arrives within 50 ms (issue 13: halves
    # audit's CPU per recommendation at 50/s); the trail is not on the webhook's path
    consumer_linger_ms: int = 50
    # aiokafka's own default, not the bus's 50 ms: audit reads every topic, so each empty
    # fetch costs the broker most; on Tansu a held fetch answers ~wait/10 after data arrives
    kafka_fetch_max_wait_ms: int = 500
    # `GET /v1/audit/verify?full=true` (supervisor key) re-hashes the whole log: one at a
    # time, at most this many per minute in this process, else 429
    full_verify_per_minute: int = Field(default=6, ge=1)
    proof_cache_size: int = Field(default=1024, ge=0)  # proofs of fixed trees, LRU

    production_secrets: ClassVar[tuple[str, ...]] = ("signing_key", "pii_key")

    @property
    def resolved_data_dir(self) -> Path:
        """Where development keys live: `data_dir`, else next to the SQLite file, else var/."""
        if self.data_dir is not None:
            return self.data_dir
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).resolve().parent
        return Path("var")
