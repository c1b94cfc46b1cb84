"""Reference data (units, agencies, categories, time limits) loaded from YAML and validated."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from phoihop_common.access import AccessRules
from phoihop_schemas.events import Kind


class ConfigError(Exception):
    """A configuration file is missing or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AdminUnit(_Model):
    """A commune-level unit (xã, phường, đặc khu) or an older district."""

    code: str
    name: str
    kind: str


class Province(_Model):
    """The province the deployment serves."""

    code: str
    name: str


class Agency(_Model):
    """A body on the bus and its roles (resolver, supervisor, forwarder, triage)."""

    code: str
    name: str
    role: tuple[str, ...]
    locality: str | None = None


class Category(_Model):
    """A field (lĩnh vực) and the provincial body competent for it."""

    code: str
    name: str
    covers: str
    agency: str


class Duration(_Model):
    """A time limit in calendar days or working days."""

    days: int | None = None
    working_days: int | None = None
    seconds: int | None = None  # for demos and tests only: a time limit of a few seconds
    complex_days: int | None = None
    extensions: int = 0
    extension_days: int | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Duration:
        given = [u for u in (self.days, self.working_days, self.seconds) if u is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of days / working_days / seconds")
        return self


class KindPolicy(_Model):
    """Time limits of one kind of submission."""

    accept: Duration
    answer: Duration
    confidential_reporter: bool = False


class EscalationLevel(_Model):
    """One rung of the escalation ladder."""

    after: Duration
    to: tuple[str, ...]


class Escalation(_Model):
    """Reminder before the deadline and the ladder after it."""

    remind_before: Duration
    levels: tuple[EscalationLevel, ...]


class SlaPolicies(_Model):
    """Time limits by kind, plus the escalation ladder."""

    kinds: dict[Kind, KindPolicy]
    escalation: Escalation
    extra_days_off: tuple[str, ...] = ()


def commune_agency_code(unit_code: str) -> str:
    """Code of a commune's People's Committee: `xa-an-binh` -> `UBND_XA_XA_AN_BINH`."""
    return "UBND_XA_" + unit_code.upper().replace("-", "_")


class Reference(_Model):
    """All reference data of one deployment."""

    province: Province
    units: tuple[AdminUnit, ...]
    agencies: tuple[Agency, ...]
    categories: tuple[Category, ...]
    sla: SlaPolicies
    access: AccessRules
    config_dir: str

    @model_validator(mode="after")
    def _need_to_know_known(self) -> Reference:
        unknown = set(self.access.need_to_know) - self.agency_codes
        if unknown:
            raise ValueError(f"access.yaml need_to_know names unknown agencies {sorted(unknown)}")
        return self

    @property
    def unit_codes(self) -> frozenset[str]:
        """Codes of every administrative unit."""
        return frozenset(u.code for u in self.units)

    @property
    def agency_codes(self) -> frozenset[str]:
        """Codes of every agency, commune committees included."""
        return frozenset(a.code for a in self.agencies)

    def agency(self, code: str) -> Agency:
        """Look an agency up by code."""
        for a in self.agencies:
            if a.code == code:
                return a
        raise KeyError(code)

    def category(self, code: str) -> Category:
        """Look a category up by code."""
        for c in self.categories:
            if c.code == code:
                return c
        raise KeyError(code)

    def unit(self, code: str) -> AdminUnit:
        """Look an administrative unit up by code."""
        for u in self.units:
            if u.code == code:
                return u
        raise KeyError(code)

    def with_role(self, role: str) -> tuple[Agency, ...]:
        """Agencies having a role."""
        return tuple(a for a in self.agencies if role in a.role)


def default_config_dir() -> Path:
    """`PHOIHOP_CONFIG_DIR`, else `deploy/config` of the checkout this package runs from."""
    env = os.environ.get("PHOIHOP_CONFIG_DIR")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "deploy" / "config"
        if (candidate / "agencies.yaml").is_file():
            return candidate
    return Path.cwd() / "deploy" / "config"


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, raising ConfigError with the file name."""
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"missing config file {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {exc}") from exc


def load_reference(config_dir: Path | str | None = None) -> Reference:
    """Load and validate the reference data; commune committees are derived from the units."""
    base = Path(config_dir) if config_dir else default_config_dir()
    units_doc = read_yaml(base / "admin_units.yaml")
    agencies_doc = read_yaml(base / "agencies.yaml")
    categories_doc = read_yaml(base / "categories.yaml")
    sla_doc = read_yaml(base / "sla_policies.yaml")
    access_doc = read_yaml(base / "access.yaml")
    try:
        units = tuple(AdminUnit.model_validate(u) for u in units_doc["units"])
        agencies = [Agency.model_validate(a) for a in agencies_doc["agencies"]]
        known = {a.code for a in agencies}
        for unit in units:
            code = commune_agency_code(unit.code)
            if code not in known:
                agencies.append(
                    Agency(
                        code=code,
                        name=f"Ủy ban nhân dân {unit.name}",
                        role=("resolver",),
                        locality=unit.code,
                    )
                )
        return Reference(
            province=Province.model_validate(units_doc["province"]),
            units=units,
            agencies=tuple(agencies),
            categories=tuple(Category.model_validate(c) for c in categories_doc["categories"]),
            sla=SlaPolicies.model_validate(sla_doc),
            access=AccessRules.model_validate(access_doc),
            config_dir=str(base),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid reference data in {base}: {exc}") from exc


@cache
def reference() -> Reference:
    """The reference data of this process (loaded once)."""
    return load_reference()


ApiKeyHash = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
