"""Settings of the audit service (env prefix `PHOIHOP_AUDIT_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from phoihop_common.kafka import KafkaSettings


class AuditSettings(BaseSettings, KafkaSettings):
    """Every setting of the audit service, read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="PHOIHOP_AUDIT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/audit.db"
    data_dir: Path | None = None
    signing_key: SecretStr | None = None
    trusted_public_keys: str = ""
    pii_key: SecretStr | None = None
    checkpoint_interval: float = 5.0
    timezone: str = "Asia/Ho_Chi_Minh"  # report periods and date filters are local dates
    config_dir: Path | None = None
    log_level: str = "INFO"
    consumer_group: str = "phoihop-audit"
    batch_max_records: int = 500
    session_timeout_ms: int = 10_000

    @model_validator(mode="after")
    def _production_secrets(self) -> AuditSettings:
        if self.environment == "production":
            missing = [n for n in ("signing_key", "pii_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"production requires {', '.join(missing)}")
        return self

    @property
    def resolved_data_dir(self) -> Path:
        """Where development keys live: `data_dir`, else next to the SQLite file, else var/."""
        if self.data_dir is not None:
            return self.data_dir
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).resolve().parent
        return Path("var")
