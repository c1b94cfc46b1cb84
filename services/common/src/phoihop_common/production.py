"""`environment=production` refuses development keys and placeholder secrets at start-up.

Every service's settings mix in `ProductionSettings`. Its validator runs when the settings
are read, so a production process with the development API keys (`dev-<AGENCY_CODE>`, the
hashes shipped in `deploy/config/api_keys.yaml`), a missing or placeholder secret, or no
metrics token stops before it serves anything, with a message naming what to set (as the
settings of fastapi/full-stack-fastapi-template refuse `changethis` outside development).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, SecretStr, model_validator

from phoihop_common.auth import ApiKeys, hash_key
from phoihop_common.config import ConfigError, Reference, default_config_dir, load_reference

API_KEYS_FILE = "api_keys.yaml"
# whole values that are never a real secret (compared stripped and lower-cased)
PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "placeholder",
        "dev",
        "development",
        "secret",
        "password",
        "test",
        "todo",
        "xxx",
        "none",
        "null",
    }
)
# a value containing one of these was copied from an example
_PLACEHOLDER_PARTS = ("changeme", "change-me", "change_me", "changethis", "placeholder")


class ProductionConfigError(ValueError):
    """A production setting is missing, a placeholder, or a development value."""


def is_placeholder(value: str) -> bool:
    """True for an empty, example or development value of a secret."""
    folded = value.strip().lower()
    return folded in PLACEHOLDERS or any(part in folded for part in _PLACEHOLDER_PARTS)


def development_key_hashes(reference: Reference) -> frozenset[str]:
    """Hashes of the development keys `dev-<AGENCY_CODE>` of every agency of the reference."""
    return frozenset(hash_key(f"dev-{agency.code}") for agency in reference.agencies)


def development_keys_in(keys: ApiKeys, reference: Reference) -> list[str]:
    """Agencies of `keys` whose key is a development key (sorted)."""
    dev = development_key_hashes(reference)
    return sorted({agency for digest, agency in keys.by_hash.items() if digest in dev})


class ProductionSettings(BaseModel):
    """Fields and the start-up check every service's settings share (a settings mixin)."""

    environment: Literal["development", "production"] = "development"
    # agencies' key hashes; default `<config dir>/api_keys.yaml`. The image ships none:
    # production mounts its own file (a Secret) there or names it here.
    api_keys_file: Path | None = None
    # bearer token Prometheus must present on /metrics (open when unset); production needs it
    metrics_token: SecretStr | None = None

    # secret settings production requires, besides `metrics_token` (each service names its own)
    production_secrets: ClassVar[tuple[str, ...]] = ()
    # False for a service that authenticates no agency (routing)
    reads_api_keys: ClassVar[bool] = True

    def config_directory(self) -> Path:
        """The service's `config_dir`, else `PHOIHOP_CONFIG_DIR`, else deploy/config."""
        config_dir = getattr(self, "config_dir", None)
        return Path(config_dir) if config_dir else default_config_dir()

    def api_keys_path(self) -> Path:
        """The API key file in use."""
        return self.api_keys_file or self.config_directory() / API_KEYS_FILE

    def env_name(self, field: str) -> str:
        """The environment variable of one field (`PHOIHOP_<SVC>_<FIELD>`)."""
        prefix = str(dict(self.model_config).get("env_prefix", ""))
        return f"{prefix}{field}".upper()

    @model_validator(mode="after")
    def _refuse_development_values(self) -> Self:
        if self.environment == "production":
            problems = production_problems(self)
            if problems:
                listed = "\n".join(f"  - {p}" for p in problems)
                raise ProductionConfigError(f"environment=production refuses to start:\n{listed}")
        return self


def production_problems(settings: ProductionSettings) -> list[str]:
    """Everything that makes `settings` unfit for production, as sentences naming the fix."""
    problems = _secret_problems(settings)
    if settings.reads_api_keys:
        problems += _api_key_problems(settings)
    return problems


def _secret_problems(settings: ProductionSettings) -> list[str]:
    problems = []
    required = ("metrics_token", *settings.production_secrets)
    for name in required:
        if getattr(settings, name) is None:
            problems.append(f"{name} is required: set {settings.env_name(name)}")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
            problems.append(
                f"{name} is a placeholder: set {settings.env_name(name)} to a real secret"
            )
    return problems


def _api_key_problems(settings: ProductionSettings) -> list[str]:
    path = settings.api_keys_path()
    fix = (
        f"mount a file of your agencies' own key hashes at {path} or set "
        f"{settings.env_name('api_keys_file')} to one "
        '(hash a key: python -c "from phoihop_common.auth import hash_key; '
        "print(hash_key('<key>'))\")"
    )
    try:
        keys = ApiKeys.load(path)
    except ConfigError as exc:
        return [f"API key file unreadable ({exc}): {fix}"]
    try:
        reference = load_reference(settings.config_directory())
    except ConfigError as exc:
        return [f"reference data unreadable, development keys not checked: {exc}"]
    dev = development_keys_in(keys, reference)
    if not dev:
        return []
    shown = ", ".join(dev[:5]) + (f" and {len(dev) - 5} more" if len(dev) > 5 else "")
    return [f"{path} holds the development keys (dev-<AGENCY_CODE>) of {shown}: {fix}"]
