"""Routing rules as data: the schema of `routing_rules.yaml`, its loader and the one matcher."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phoihop_common.config import ConfigError, read_yaml
from phoihop_routing.textmatch import MatchText, PhraseSet, contains, exact_phrase, fold_phrase
from phoihop_schemas.events import Level

RULES_FILE = "routing_rules.yaml"

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=80)]


class RulesError(ConfigError):
    """The routing rules file is missing or invalid (message names the file and the field)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Model):
    """One rule: terms that, when present in the folded text, count as evidence."""

    id: RuleId
    category: str | None = None
    level: Level | None = None
    weight: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    max_hits: Annotated[int, Field(ge=1, le=10)] = 2
    national_scope: bool = False
    terms: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("terms", "exact")
    @classmethod
    def _no_empty_terms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for term in value:
            if not fold_phrase(term):
                raise ValueError(f"empty term {term!r}")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _has_evidence(self) -> Rule:
        if not (self.terms or self.exact or self.patterns):
            raise ValueError(f"rule {self.id!r} has no terms, exact terms or patterns")
        if self.national_scope and self.level is not Level.TRUNG_UONG:
            raise ValueError(f"rule {self.id!r}: national_scope only applies to trung_uong")
        return self


class RoutingRules(_Model):
    """The whole rules file."""

    version: Annotated[str, Field(min_length=1, max_length=40)]
    triage_below: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    default_level: Level = Level.TINH
    unplaced_category: str = "KHAC"
    vocabulary_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    levels: tuple[Rule, ...]
    categories: tuple[Rule, ...]

    @model_validator(mode="after")
    def _consistent(self) -> RoutingRules:
        seen: set[str] = set()
        for rule in (*self.levels, *self.categories):
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        for rule in self.levels:
            if rule.level is None or rule.category is not None:
                raise ValueError(f"level rule {rule.id!r} needs a level and no category")
        for rule in self.categories:
            if rule.category is None:
                raise ValueError(f"category rule {rule.id!r} needs a category")
            if rule.national_scope:
                raise ValueError(f"category rule {rule.id!r}: national_scope is for level rules")
        return self

    def check_categories(self, *, known: Iterable[str]) -> None:
        """Refuse category codes that the reference data does not define."""
        codes = set(known)
        for rule in self.categories:
            if rule.category not in codes:
                raise RulesError(
                    f"rule {rule.id!r}: unknown category {rule.category!r} "
                    f"(known: {', '.join(sorted(codes))})"
                )
        if self.unplaced_category not in codes:
            raise RulesError(f"unknown unplaced_category {self.unplaced_category!r}")


@dataclass(frozen=True)
class Hit:
    """A rule that matched a text, with the terms that matched."""

    rule: Rule
    terms: tuple[str, ...]

    @property
    def score(self) -> float:
        """Weight times matched terms, capped at the rule's max_hits."""
        return self.rule.weight * min(len(self.terms), self.rule.max_hits)


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its terms folded and its patterns compiled."""

    rule: Rule
    folded: tuple[str, ...]
    toned: tuple[str, ...]  # the same terms with diacritics kept, aligned with `folded`
    exact: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        """Fold and compile once."""
        terms = dict.fromkeys((fold_phrase(t), exact_phrase(t)) for t in rule.terms)
        return cls(
            rule=rule,
            folded=tuple(f for f, _ in terms),
            toned=tuple(t for _, t in terms),
            exact=tuple(dict.fromkeys(exact_phrase(t) for t in rule.exact)),
            patterns=tuple(re.compile(p) for p in rule.patterns),
        )

    def match(self, text: MatchText) -> Hit | None:
        """The matched terms (folded form), or None.

        Terms are compared with diacritics when the text has them (a term written without
        diacritics then only matches a word written the same way), folded otherwise.
        """
        if text.has_diacritics:
            pairs = zip(self.folded, self.toned, strict=True)
            found = [f for f, t in pairs if contains(text.exact, t)]
        else:
            found = [f for f in self.folded if contains(text.folded, f)]
        found += [t for t in self.exact if contains(text.exact, t)]
        return self._hit(text, found)

    def match_present(self, text: MatchText, *, folded: set[str], toned: set[str]) -> Hit | None:
        """`match`, given the phrases already found in `text.folded` and `text.exact`."""
        if text.has_diacritics:
            pairs = zip(self.folded, self.toned, strict=True)
            found = [f for f, t in pairs if t in toned]
        else:
            found = [f for f in self.folded if f in folded]
        found += [t for t in self.exact if t in toned]
        return self._hit(text, found)

    def _hit(self, text: MatchText, found: list[str]) -> Hit | None:
        for pattern in self.patterns:
            m = pattern.search(text.folded)
            if m:
                found.append(m.group(0).strip())
        # a longer matched term contains a shorter one ("duong lien thon" / "lien thon"):
        # count it once
        distinct = [t for t in found if not any(t != o and f" {t} " in f" {o} " for o in found)]
        return Hit(rule=self.rule, terms=tuple(dict.fromkeys(distinct))) if distinct else None


class RuleIndex:
    """Matches many compiled rules on a text in one pass over its words.

    `hits(text)` equals `[rule.match(text) for rule in rules]`: the phrases of every rule
    are looked up once per text (`PhraseSet`) and only the rules with a phrase present, or
    with patterns, are evaluated.
    """

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self._folded = PhraseSet(f for r in self.rules for f in r.folded)
        self._toned = PhraseSet(t for r in self.rules for t in (*r.toned, *r.exact))
        by_folded: dict[str, set[int]] = {}
        by_toned: dict[str, set[int]] = {}  # terms, compared with diacritics
        by_exact: dict[str, set[int]] = {}
        for i, rule in enumerate(self.rules):
            for f in rule.folded:
                by_folded.setdefault(f, set()).add(i)
            for t in rule.toned:
                by_toned.setdefault(t, set()).add(i)
            for t in rule.exact:
                by_exact.setdefault(t, set()).add(i)
        self._by_folded, self._by_toned, self._by_exact = by_folded, by_toned, by_exact
        self._with_patterns = frozenset(i for i, r in enumerate(self.rules) if r.patterns)

    def hits(self, text: MatchText) -> list[Hit | None]:
        """The hit of every rule (None where it does not match), in rule order."""
        toned = self._toned.present(text.exact)
        folded = set() if text.has_diacritics else self._folded.present(text.folded)
        todo = set(self._with_patterns)
        for t in toned:
            todo.update(self._by_exact.get(t, ()))
            if text.has_diacritics:
                todo.update(self._by_toned.get(t, ()))
        for f in folded:
            todo.update(self._by_folded[f])
        out: list[Hit | None] = [None] * len(self.rules)
        for i in todo:
            out[i] = self.rules[i].match_present(text, folded=folded, toned=toned)
        return out


def load_rules(path: Path) -> RoutingRules:
    """Parse and validate a rules file; errors name the file and the offending field."""
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise RulesError(f"{path}: expected a mapping with version, levels and categories")
    try:
        return RoutingRules.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _location(doc, err["loc"])
            problems.append(f"{where}: {err['msg']}")
        raise RulesError(f"invalid routing rules in {path}: " + "; ".join(problems)) from exc


def _location(doc: object, loc: tuple[int | str, ...]) -> str:
    """'categories[3] (id gt.duong_thon).weight' from a pydantic error location."""
    parts: list[str] = []
    node: object = doc
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
            node = node[key] if isinstance(node, list) and key < len(node) else None
            if isinstance(node, dict) and "id" in node:
                parts.append(f" (id {node['id']})")
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "file"
