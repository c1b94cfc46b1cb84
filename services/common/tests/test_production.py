"""`environment=production` refuses development keys and placeholder secrets, in every service."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from phoihop_audit.settings import AuditSettings
from phoihop_common.auth import ApiKeys, hash_key
from phoihop_common.config import load_reference
from phoihop_common.production import (
    ProductionSettings,
    development_keys_in,
    is_placeholder,
    production_problems,
)
from phoihop_ingest.settings import IngestSettings
from phoihop_notify.settings import NotifySettings
from phoihop_routing.settings import Settings as RoutingSettings

SERVICES: dict[str, type[ProductionSettings]] = {
    "ingest": IngestSettings,
    "audit": AuditSettings,
    "notify": NotifySettings,
    "routing": RoutingSettings,
}
PII_KEY = base64.b64encode(os.urandom(32)).decode()
SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()  # seed form; only its presence matters
METRICS_TOKEN = secrets.token_urlsafe(32)


def _secrets(svc: str) -> dict[str, Any]:
    """Real-looking values for every secret production requires of `svc`."""
    values: dict[str, Any] = {"metrics_token": METRICS_TOKEN}
    if svc in ("ingest", "notify", "audit"):
        values["pii_key"] = PII_KEY
    if svc == "audit":
        values["signing_key"] = SIGNING_KEY
    return values


def _own_keys(path: Path) -> Path:
    """A key file with freshly generated keys for two agencies."""
    keys = [
        {"agency": agency, "hash": hash_key(secrets.token_urlsafe(24))}
        for agency in ("SO_XAY_DUNG", "TT_HDND")
    ]
    path.write_text(yaml.safe_dump({"keys": keys}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "value", ["", "  ", "changeme", "CHANGE-ME", "dev", "placeholder", "x-changethis"]
)
def test_placeholders_are_recognised(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize(
    "value",
    [PII_KEY, METRICS_TOKEN, "devops-2026-Hn8s!kq"],
    ids=["pii-key", "metrics-token", "phrase"],
)
def test_real_secrets_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


def test_the_shipped_key_file_holds_a_development_key_of_every_agency() -> None:
    reference = load_reference()
    dev = development_keys_in(ApiKeys.load(), reference)
    assert dev == sorted({a.code for a in reference.agencies})


@pytest.mark.parametrize("svc", sorted(SERVICES))
def test_development_accepts_the_development_keys(svc: str, config_dir: Path) -> None:
    settings = SERVICES[svc](config_dir=str(config_dir))
    assert settings.environment == "development"
    assert settings.api_keys_path() == config_dir / "api_keys.yaml"


@pytest.mark.parametrize("svc", ["ingest", "audit", "notify"])
def test_production_refuses_the_development_keys(svc: str, config_dir: Path) -> None:
    prefix = f"PHOIHOP_{svc.upper()}_"
    with pytest.raises(ValidationError) as err:
        SERVICES[svc](environment="production", config_dir=str(config_dir), **_secrets(svc))
    message = str(err.value)
    assert "development keys (dev-<AGENCY_CODE>)" in message
    assert f"{prefix}API_KEYS_FILE" in message
    # one development key among real ones is enough to refuse
    keys = yaml.safe_load(_own_keys(config_dir / "mixed.yaml").read_text(encoding="utf-8"))
    keys["keys"].append({"agency": "SO_Y_TE", "hash": hash_key("dev-SO_Y_TE")})
    (config_dir / "mixed.yaml").write_text(yaml.safe_dump(keys), encoding="utf-8")
    with pytest.raises(ValidationError, match="of SO_Y_TE:"):
        SERVICES[svc](
            environment="production",
            config_dir=str(config_dir),
            api_keys_file=config_dir / "mixed.yaml",
            **_secrets(svc),
        )


@pytest.mark.parametrize("svc", sorted(SERVICES))
def test_production_starts_with_real_keys_and_secrets(
    svc: str, config_dir: Path, tmp_path: Path
) -> None:
    own = _own_keys(tmp_path / "mounted-keys.yaml")
    settings = SERVICES[svc](
        environment="production", config_dir=str(config_dir), api_keys_file=own, **_secrets(svc)
    )
    assert production_problems(settings) == []
    assert settings.api_keys_path() == own
    # or the mounted file replaces the one in the config directory
    (config_dir / "api_keys.yaml").write_text(own.read_text(encoding="utf-8"), encoding="utf-8")
    SERVICES[svc](environment="production", config_dir=str(config_dir), **_secrets(svc))


@pytest.mark.parametrize("svc", sorted(SERVICES))
def test_production_names_each_missing_or_placeholder_secret(
    svc: str, config_dir: Path, tmp_path: Path
) -> None:
    own = _own_keys(tmp_path / "keys.yaml")
    prefix = f"PHOIHOP_{svc.upper()}_"
    with pytest.raises(ValidationError) as err:
        SERVICES[svc](environment="production", config_dir=str(config_dir), api_keys_file=own)
    for name in _secrets(svc):
        assert f"{name} is required: set {prefix}{name.upper()}" in str(err.value)
    placeholders = dict.fromkeys(_secrets(svc), "changeme")
    with pytest.raises(ValidationError) as err:
        SERVICES[svc](
            environment="production", config_dir=str(config_dir), api_keys_file=own, **placeholders
        )
    for name in placeholders:
        assert f"{name} is a placeholder: set {prefix}{name.upper()}" in str(err.value)


def test_production_reads_the_environment_and_refuses_a_missing_key_file(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _secrets("ingest").items():
        monkeypatch.setenv(f"PHOIHOP_INGEST_{name.upper()}", value)
    monkeypatch.setenv("PHOIHOP_INGEST_ENVIRONMENT", "production")
    monkeypatch.setenv("PHOIHOP_INGEST_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("PHOIHOP_INGEST_API_KEYS_FILE", str(tmp_path / "not-mounted.yaml"))
    with pytest.raises(ValidationError, match="API key file unreadable"):
        IngestSettings()
    monkeypatch.setenv("PHOIHOP_INGEST_API_KEYS_FILE", str(_own_keys(tmp_path / "k.yaml")))
    assert IngestSettings().environment == "production"
