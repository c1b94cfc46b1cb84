"""What comparisons need of a signature, computed once and cached on it (`_Stats`), and
the upper bound of a similarity that lets searches skip cases without comparing (`_Probe`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from phoihop_routing.duplicates.objects import _CLASS_TYPES, _WEAK_TYPES
from phoihop_routing.duplicates.signatures import (
    CROSS_COMMUNE_BUCKETS,
    CaseSignature,
    _content_word,
)

# similarity bounds are compared with the bar minus this (rounding of the similarity)
_BOUND_MARGIN = 1e-3

# the most each part of the similarity adds (see `compare`): concepts and the bonus
_MAX_CONCEPTS = 0.15

_MAX_BONUS = 0.4

_STATS_ATTR = "_dup_stats"


def _index_keys(stats: _Stats) -> tuple[str, ...]:
    """Non-word keys of a case in a `DuplicateIndex`: bonus keys and concepts ("#o")."""
    return (*stats.keys, *(CONCEPT_KEY + c for c in stats.concept_set))


# index key prefix of a concept (`DuplicateIndex`): a case sharing none with a candidate
# gets nothing from concepts, and when both have some it is vetoed unless much wording is
# shared (`DIFFERENT_CONCERN_WORDS`)
CONCEPT_KEY = "#o"

# without a field rule in common, only this much shared wording still counts as one concern
# (a veto of `similarity.compare`, which the bound mirrors)
DIFFERENT_CONCERN_WORDS = 0.4


def _bonus_keys(sig: CaseSignature) -> tuple[str, ...]:
    """Index keys two signatures share whenever `compare` could give them a bonus.

    Shared identifier ("#i"), shared name ("#n"), a multi-word name of one that is the
    value of an identifier of the other ("#v": multi-word identifier values and names), or
    a word of the names of two identifiers of one type ("#c", the name cut short).
    """
    idents = [i for i in sig.identifiers if i.partition(":")[0] not in _CLASS_TYPES]
    keys = {"#i" + i for i in idents}
    values = (i.split(":", 1)[1] for i in idents if ":" in i)
    keys.update("#v" + v for v in values if " " in v)
    keys.update("#n" + n for n in sig.names)
    keys.update("#v" + n for n in sig.names if " " in n)
    # a word of an identifier's name ("#c"): a name cut short or lengthened ("chợ Mai" /
    # "chợ Mai Xá") is the same object (`similarity._contained`), so no veto applies
    keys.update(f"#c{k}:{w}" for k, _, v in (i.partition(":") for i in idents) for w in v.split())
    return tuple(sorted(keys))


@dataclass(frozen=True, slots=True)
class _Stats:
    """What the similarity bound needs of an open case (computed once per signature, small:
    no copy of the words is kept)."""

    n_words: int
    n_pairs: int
    keys: tuple[str, ...]
    kinds: tuple[str, ...]  # identifier types
    # every content word of a pair is among `words` (true of any `signature` output); the
    # pair bound relies on it, a case without it is always compared in full
    safe: bool
    # for `compare`: the signature's sets, identifiers by type and by value, whether an
    # object is named, the names carried
    word_set: frozenset[str] = frozenset()
    pair_set: frozenset[str] = frozenset()
    concept_set: frozenset[str] = frozenset()
    field_concept_set: frozenset[str] = frozenset()
    idents: frozenset[str] = frozenset()
    name_set: frozenset[str] = frozenset()
    multi_names: frozenset[str] = frozenset()  # names of several words
    by_type: dict[str, set[str]] = field(default_factory=dict)
    by_value: dict[str, tuple[str, ...]] = field(default_factory=dict)
    names_object: bool = False
    values: frozenset[str] = frozenset()
    empty_name: bool = False  # an identifier with no name (contained in any other name)


def _stats(sig: CaseSignature) -> _Stats:
    cached = sig.__dict__.get(_STATS_ATTR)
    if cached is None:
        words = frozenset(sig.words)
        pairs = set(sig.pairs)
        safe = all(_pair_words_ok(p, words) for p in pairs)
        by_value: dict[str, list[str]] = {}
        for ident in sig.identifiers:
            by_value.setdefault(ident.partition(":")[2], []).append(ident)
        by_type = _by_type(sig.identifiers)
        cached = _Stats(
            empty_name=any("" in values for values in by_type.values()),
            word_set=words,
            pair_set=frozenset(pairs),
            concept_set=frozenset(sig.concepts),
            field_concept_set=frozenset(sig.field_concepts),
            idents=frozenset(sig.identifiers),
            name_set=frozenset(sig.names),
            multi_names=frozenset(n for n in sig.names if " " in n),
            by_value={v: tuple(i) for v, i in by_value.items()},
            by_type=by_type,
            names_object=_names_object(sig),
            values=frozenset(_values(sig)),
            n_words=len(words),
            n_pairs=len(pairs),
            keys=_bonus_keys(sig),
            kinds=tuple(
                sorted(
                    {i.partition(":")[0] for i in sig.identifiers} - _CLASS_TYPES,
                )
            ),
            safe=safe,
        )
        object.__setattr__(sig, _STATS_ATTR, cached)  # a cache, not a field: eq/repr unchanged
    return cached


def _pair_words_ok(pair: str, words: frozenset[str]) -> bool:
    parts = pair.split("_")
    return len(parts) == 2 and all(p in words for p in parts if _content_word(p))


class _Probe:
    """A candidate prepared for bounding its similarity to many open cases.

    `compare` gives at most 0.45 x words cosine + 0.25 x pairs cosine + 0.15 (concepts)
    + 0.4 (bonus, only with a shared identifier or name key). With `o` shared content
    words, the shared pairs are at most the candidate's pairs without a content word plus
    the pairs of its `o` most paired content words (a shared pair's content words are
    shared words). Concepts add nothing unless both cases have one in common, and two cases
    with concepts but none in common are vetoed under `DIFFERENT_CONCERN_WORDS` of shared
    wording. An identifier type both name vetoes the comparison unless a shared key could
    lift the veto (`kind_vetoed`). Each rule mirrors a veto or a term of `compare`, so a
    skipped case is one `compare` would have vetoed or left under the bar.
    """

    def __init__(self, candidate: CaseSignature) -> None:
        stats = _stats(candidate)
        self.words = frozenset(candidate.words)
        self.keys = frozenset(stats.keys)
        # identifier types whose disjoint values veto a merge (`compare`): hamlets and
        # the like never do in a province-wide bucket
        kinds = frozenset(stats.kinds)
        if candidate.bucket in CROSS_COMMUNE_BUCKETS:
            kinds -= _WEAK_TYPES
        self.kinds = kinds
        self.empty_name = stats.empty_name
        self.concepts = stats.concept_set
        self.safe = stats.safe
        self.n_words = stats.n_words
        self.n_pairs = stats.n_pairs
        per_word: Counter[str] = Counter()
        self.plain_pairs = 0  # pairs without a content word
        for pair in set(candidate.pairs):
            content = {p for p in pair.split("_") if _content_word(p)}
            if not content:
                self.plain_pairs += 1
            per_word.update(content)
        top = sorted(per_word.values(), reverse=True)
        self.top_pairs = [0]
        for n in top:
            self.top_pairs.append(self.top_pairs[-1] + n)

    def bound(self, case: CaseSignature) -> float:
        """Upper bound of the similarity to a case (inf when the bound does not apply)."""
        stats = _stats(case)
        if not stats.safe:
            return math.inf
        overlap = len(self.words.intersection(case.words))
        return self.bound_from(
            stats,
            overlap=overlap,
            shared_keys=self.keys.intersection(stats.keys),
            shared_concepts=not self.concepts.isdisjoint(stats.concept_set),
        )

    def bound_from(
        self,
        stats: _Stats,
        *,
        overlap: int,
        shared_keys: Collection[str],
        shared_concepts: bool,
    ) -> float:
        """Upper bound given the shared content words (at least), bonus keys and concepts.

        -inf when `compare` is certain to veto: an identifier type both name with no shared
        key to lift it (`kind_vetoed`), or concepts on both sides, none shared, and less
        shared wording than `DIFFERENT_CONCERN_WORDS`.
        """
        if self.kind_vetoed(stats, shared_keys):
            return -math.inf
        words = 0.0
        if overlap and self.n_words and stats.n_words:
            words = overlap / math.sqrt(self.n_words * stats.n_words)
        other_concern = self.concepts and stats.concept_set and not shared_concepts
        if other_concern and words < DIFFERENT_CONCERN_WORDS:
            return -math.inf
        score = (_MAX_CONCEPTS if shared_concepts else 0.0) + (_MAX_BONUS if shared_keys else 0.0)
        score += 0.45 * words
        if self.n_pairs and stats.n_pairs:
            top = self.top_pairs[min(overlap, len(self.top_pairs) - 1)]
            pairs = min(self.n_pairs, stats.n_pairs, self.plain_pairs + top)
            score += 0.25 * pairs / math.sqrt(self.n_pairs * stats.n_pairs)
        return score

    def kind_vetoed(self, stats: _Stats, shared_keys: Collection[str]) -> bool:
        """True when `compare` vetoes for an identifier type both name, whatever else.

        A type is spared only by a shared identifier of it ("#i") or a shared word of its
        names ("#c": a name cut short), or, for a weak type (hamlet...), by anything that
        may make a strong object shared ("#i"/"#c" of a strong type, "#v" a name that is
        the other's identifier). An empty name is contained in any other: never vetoed.
        """
        common = self.kinds.intersection(stats.kinds)
        if not common:
            return False
        spared: set[str] = set()
        strong = False
        for key in shared_keys:
            tag = key[:2]
            if tag == "#v":
                strong = True
            elif tag in ("#i", "#c"):
                kind = key[2:].partition(":")[0]
                spared.add(kind)
                strong = strong or kind not in _WEAK_TYPES
        if all(kind in spared or (strong and kind in _WEAK_TYPES) for kind in common):
            return False
        # an empty name is contained in any other name (of its type, strong or weak)
        return not (self.empty_name or stats.empty_name)

    def unseen_bound(self) -> float:
        """Upper bound for a case sharing no content word, bonus key or concept.

        Such a case is vetoed when both have concepts (`bound_from`); this bounds the
        others: only pairs without a content word can still be shared.
        """
        return 0.25 * math.sqrt(self.plain_pairs / self.n_pairs) if self.n_pairs else 0.0


def _by_type(identifiers: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ident in identifiers:
        kind, _, value = ident.partition(":")
        out.setdefault(kind, set()).add(value)
    return out


def _names_object(sig: CaseSignature) -> bool:
    return any(i.partition(":")[0] not in _WEAK_TYPES | _CLASS_TYPES for i in sig.identifiers)


def _values(sig: CaseSignature) -> set[str]:
    """The names a signature carries: identifier values (any type) and proper names."""
    out = {i.partition(":")[2] for i in sig.identifiers if i.partition(":")[0] not in _CLASS_TYPES}
    out.update(sig.names)
    return out
