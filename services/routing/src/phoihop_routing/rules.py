"""Routing rules as data: the schema of `routing_rules.yaml`, its loader and the one matcher."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phoihop_common.config import ConfigError, read_yaml
from phoihop_routing.textmatch import (
    NO_PASSING,
    MatchText,
    PassingMarkers,
    PhraseSet,
    contains,
    exact_phrase,
    fold_phrase,
)
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
    # a tinh level rule naming a provincial rule or programme: the concern is the same in
    # every commune, duplicates are looked for province-wide (bucket `province`)
    province_scope: bool = False
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
        if self.province_scope and self.level is not Level.TINH:
            raise ValueError(f"rule {self.id!r}: province_scope only applies to tinh")
        return self


class InPassing(_Model):
    """Terms of category rules right after these words count `factor` times their weight.

    "cạnh nhà văn hóa", "ra đến đường tỉnh 761", "đi chợ": a place or a destination, not
    the matter asked about. `after` is compared with diacritics (texts that have them),
    `after_plain` folded (texts typed without them: only markers whose folded form is not
    another common word); `blocked` are two-word runs ending with a marker word that are
    not markers ("xảy ra", "giám sát").
    """

    factor: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    after: tuple[str, ...] = ()
    after_plain: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    @field_validator("after", "after_plain")
    @classmethod
    def _one_or_two_words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in value:
            if not 1 <= len(fold_phrase(phrase).split()) <= 2:
                raise ValueError(f"{phrase!r}: a marker is one or two words")
        return value

    @field_validator("blocked")
    @classmethod
    def _two_words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in value:
            if len(fold_phrase(phrase).split()) != 2:
                raise ValueError(f"{phrase!r}: a blocked run is two words")
        return value

    def toned(self) -> PassingMarkers:
        """Markers compared with diacritics."""
        return PassingMarkers.of(
            (exact_phrase(p) for p in self.after), (exact_phrase(p) for p in self.blocked)
        )

    def folded(self) -> PassingMarkers:
        """Markers compared without diacritics."""
        return PassingMarkers.of(
            (fold_phrase(p) for p in self.after_plain), (fold_phrase(p) for p in self.blocked)
        )


class RoutingRules(_Model):
    """The whole rules file."""

    version: Annotated[str, Field(min_length=1, max_length=40)]
    triage_below: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    default_level: Level = Level.TINH
    unplaced_category: str = "KHAC"
    vocabulary_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    in_passing: InPassing = InPassing()
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
            if rule.national_scope or rule.province_scope:
                raise ValueError(f"category rule {rule.id!r}: scopes are for level rules")
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
    """A rule that matched a text, with the terms that matched.

    `passing` are the matched terms that only occur after an in-passing marker (a place
    or a destination); each counts `passing_factor` of a term.
    """

    rule: Rule
    terms: tuple[str, ...]
    passing: tuple[str, ...] = ()
    passing_factor: float = 1.0

    @property
    def score(self) -> float:
        """Weight times matched terms (in-passing ones discounted), capped at max_hits."""
        full = min(len(self.terms) - len(self.passing), self.rule.max_hits)
        rest = min(len(self.passing), self.rule.max_hits - full)
        return self.rule.weight * (full + self.passing_factor * rest)

    @functools.cached_property
    def full_terms(self) -> tuple[str, ...]:
        """The matched terms that are not in passing."""
        return tuple(t for t in self.terms if t not in self.passing)

    def without(self, dropped: set[str]) -> Hit | None:
        """The hit without some terms (None when nothing is left)."""
        terms = tuple(t for t in self.terms if t not in dropped)
        if not terms:
            return None
        passing = tuple(t for t in self.passing if t not in dropped)
        return Hit(rule=self.rule, terms=terms, passing=passing, passing_factor=self.passing_factor)


_ANY: tuple[None, ...] = (None,) * 64
# a pattern's opening: lookbehinds, a word boundary, then a word or a group of alternatives
# whose first words are plain words, followed by a space, a word boundary or the end
_LEADING = re.compile(
    r"^(?:\(\?<!?[^()]*\))*\\b"
    r"(?:(?P<word>[a-z0-9]+)(?=\\b| |$)|\((?:\?:)?(?P<alts>[a-z0-9 |]+)\)(?= |\\b|\( |\(\?: |$))"
)


def leading_words(pattern: str) -> frozenset[str] | None:
    """Words one of which a folded text must contain for `pattern` to match, or None.

    "\\bngo \\d+" needs "ngo"; "\\b(de nghi|mong) tinh" needs "de" or "mong"; a pattern
    that does not open with plain words needs nothing (it is always run).
    """
    m = _LEADING.match(pattern)
    if m is None:
        return None
    if m.group("word"):
        return frozenset({m.group("word")})
    alternatives = m.group("alts").split("|")
    if any(not a.strip() or a != a.strip() for a in alternatives):
        return None
    return frozenset(a.split()[0] for a in alternatives)


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its terms folded and its patterns compiled."""

    rule: Rule
    folded: tuple[str, ...]
    toned: tuple[str, ...]  # the same terms with diacritics kept, aligned with `folded`
    exact: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    # per pattern: words one of which the text must contain for it to match (None: any
    # text may match), so most patterns are never run on most texts
    pattern_words: tuple[frozenset[str] | None, ...] = ()
    # in-passing markers (category rules only): compared with diacritics / folded
    passing_toned: PassingMarkers = NO_PASSING
    passing_folded: PassingMarkers = NO_PASSING
    passing_factor: float = 1.0

    @classmethod
    def of(cls, rule: Rule, *, in_passing: InPassing | None = None) -> CompiledRule:
        """Fold and compile once (`in_passing`: discount terms after place markers)."""
        terms = dict.fromkeys((fold_phrase(t), exact_phrase(t)) for t in rule.terms)
        return cls(
            rule=rule,
            folded=tuple(f for f, _ in terms),
            toned=tuple(t for _, t in terms),
            exact=tuple(dict.fromkeys(exact_phrase(t) for t in rule.exact)),
            patterns=tuple(re.compile(p) for p in rule.patterns),
            pattern_words=tuple(leading_words(p) for p in rule.patterns),
            passing_toned=in_passing.toned() if in_passing else NO_PASSING,
            passing_folded=in_passing.folded() if in_passing else NO_PASSING,
            passing_factor=in_passing.factor if in_passing else 1.0,
        )

    def match(self, text: MatchText) -> Hit | None:
        """The matched terms (folded form), or None.

        Terms are compared with diacritics when the text has them (a term written without
        diacritics then only matches a word written the same way), folded otherwise.
        """
        found: list[tuple[str, str]] = []  # (term's name, form found in the haystack)
        if text.has_diacritics:
            pairs = zip(self.folded, self.toned, strict=True)
            found = [(f, t) for f, t in pairs if contains(text.exact, t)]
        else:
            found = [(f, f) for f in self.folded if contains(text.folded, f)]
        exact = [(t, t) for t in self.exact if contains(text.exact, t)]
        return self._hit(text, found, exact)

    def match_present(self, text: MatchText, *, folded: set[str], toned: set[str]) -> Hit | None:
        """`match`, given the phrases already found in `text.folded` and `text.exact`."""
        if text.has_diacritics:
            pairs = zip(self.folded, self.toned, strict=True)
            found = [(f, t) for f, t in pairs if t in toned]
        else:
            found = [(f, f) for f in self.folded if f in folded]
        exact = [(t, t) for t in self.exact if t in toned]
        return self._hit(text, found, exact)

    def _hit(
        self, text: MatchText, found: list[tuple[str, str]], exact: list[tuple[str, str]]
    ) -> Hit | None:
        # name -> in passing (every occurrence after a place marker)
        names: dict[str, bool] = {}
        haystack, markers = (
            (text.exact, self.passing_toned)
            if text.has_diacritics
            else (text.folded, self.passing_folded)
        )
        for name, form in found:
            names.setdefault(name, markers.all_in_passing(haystack, form))
        for name, form in exact:
            names.setdefault(name, self.passing_toned.all_in_passing(text.exact, form))
        for pattern, needs in zip(self.patterns, self.pattern_words or _ANY, strict=False):
            if needs is not None and needs.isdisjoint(text.word_set):
                continue
            m = pattern.search(text.folded)
            if m:
                names.setdefault(m.group(0).strip(), self._pattern_in_passing(text, m.start()))
        # a longer matched term contains a shorter one ("duong lien thon" / "lien thon"):
        # count it once
        distinct = [t for t in names if not any(t != o and f" {t} " in f" {o} " for o in names)]
        if not distinct:
            return None
        return Hit(
            rule=self.rule,
            terms=tuple(distinct),
            passing=tuple(t for t in distinct if names[t]),
            passing_factor=self.passing_factor,
        )

    def _pattern_in_passing(self, text: MatchText, start: int) -> bool:
        """Whether a pattern match at `start` of the folded text follows a place marker."""
        index = text.folded.rfind(" ", 0, start + 1)
        if not text.has_diacritics:
            return self.passing_folded.before(text.folded, index)
        # the same word position in the text with diacritics
        position = text.folded.count(" ", 0, index)
        words = text.exact_words()
        if len(words) != len(text.words()):
            return self.passing_folded.before(text.folded, index)
        before = " " + " ".join(words[max(0, position - 2) : position]) + " "
        return self.passing_toned.before(before, len(before) - 1)


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
