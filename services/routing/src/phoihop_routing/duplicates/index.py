"""`DuplicateIndex`: the open cases of one bucket, indexed so that searches compare only
the plausible ones (the same answers as `find_duplicate` and `rank_candidates`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from itertools import chain

from phoihop_routing.duplicates.search import (
    SUGGEST,
    SUGGEST_OTHER_FIELD,
    SUGGESTIONS,
    THRESHOLD,
    THRESHOLD_OTHER_FIELD,
    Candidate,
    _best,
    _ranked,
)
from phoihop_routing.duplicates.signatures import CaseSignature
from phoihop_routing.duplicates.stats import (
    _BOUND_MARGIN,
    CONCEPT_KEY,
    _index_keys,
    _Probe,
    _Stats,
    _stats,
)


class DuplicateIndex:
    """The open cases of one bucket, indexed so that `find` compares only plausible ones.

    `find(candidate=...)` returns exactly what `find_duplicate(candidate=...,
    open_cases=list(index.values()))` returns: an inverted index (content word, bonus key
    or concept -> cases) counts the words each case shares with the candidate, and a case
    whose similarity bound (`_Probe.bound_from`) stays under the bar, or that `compare`
    would veto for sure, is not compared. A case sharing nothing with the candidate is
    only looked at when pairs alone could still reach the bar. Memory: one list entry
    per content word, bonus key and concept of each case, plus the signatures themselves.
    Iteration order is insertion order; re-adding a present id replaces it in place
    (like a dict).
    """

    def __init__(self, cases: Iterable[CaseSignature] = ()) -> None:
        self._serial_of: dict[str, int] = {}
        self._entries: dict[int, tuple[CaseSignature, _Stats]] = {}
        self._postings: dict[str, list[int]] = {}
        self._unsafe: set[int] = set()  # cases the bound does not apply to: always compared
        self._no_concepts: set[int] = set()  # safe cases without concepts (`_plausible`)
        self._next = 0
        self._posted = 0
        self._stale = 0
        for case in cases:
            self.add(case)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, recommendation_id: object) -> bool:
        return recommendation_id in self._serial_of

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._serial_of))

    def get(self, recommendation_id: str) -> CaseSignature | None:
        """The signature of an open case, or None."""
        serial = self._serial_of.get(recommendation_id)
        return None if serial is None else self._entries[serial][0]

    def values(self) -> list[CaseSignature]:
        """The signatures, in insertion order."""
        return [sig for sig, _ in self._entries.values()]

    def add(self, case: CaseSignature) -> None:
        """Add (or replace in place) an open case."""
        serial = self._serial_of.get(case.recommendation_id)
        if serial is None:
            serial = self._next
            self._next += 1
            self._serial_of[case.recommendation_id] = serial
        stats = _stats(case)
        self._entries[serial] = (case, stats)
        if not stats.safe:
            self._unsafe.add(serial)
        else:
            self._unsafe.discard(serial)
        if stats.concept_set:
            self._no_concepts.discard(serial)
        else:
            self._no_concepts.add(serial)
        for key in (*set(case.words), *_index_keys(stats)):
            self._postings.setdefault(key, []).append(serial)
        self._posted += _posting_count(stats)

    def remove(self, recommendation_id: str) -> bool:
        """Remove an open case (its index entries are dropped lazily); False if absent."""
        serial = self._serial_of.pop(recommendation_id, None)
        if serial is None:
            return False
        _, stats = self._entries.pop(serial)
        self._unsafe.discard(serial)
        self._no_concepts.discard(serial)
        self._stale += _posting_count(stats)
        if self._stale > 1024 and self._stale * 2 > self._posted:
            self._compact()
        return True

    def find(
        self,
        *,
        candidate: CaseSignature,
        threshold: float = THRESHOLD,
        threshold_other_field: float = THRESHOLD_OTHER_FIELD,
        dismissed: Collection[tuple[str, str]] = (),
    ) -> tuple[CaseSignature, float] | None:
        """`find_duplicate` over the indexed cases (same answer, fewer comparisons)."""
        cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
        return _best(
            candidate=candidate,
            cases=self._plausible(candidate, cut),
            threshold=threshold,
            threshold_other_field=threshold_other_field,
            dismissed=dismissed,
        )

    def rank(
        self,
        *,
        candidate: CaseSignature,
        limit: int = SUGGESTIONS,
        dismissed: Collection[tuple[str, str]] = (),
        threshold: float = THRESHOLD,
        threshold_other_field: float = THRESHOLD_OTHER_FIELD,
        suggest: float = SUGGEST,
        suggest_other_field: float = SUGGEST_OTHER_FIELD,
    ) -> list[Candidate]:
        """`rank_candidates` over the indexed cases (same answer, fewer comparisons)."""
        cut = min(suggest, suggest_other_field, threshold, threshold_other_field) - _BOUND_MARGIN
        return _ranked(
            candidate=candidate,
            cases=self._plausible(candidate, cut),
            limit=limit,
            dismissed=dismissed,
            bars=(threshold, threshold_other_field, suggest, suggest_other_field),
        )

    def _plausible(self, candidate: CaseSignature, cut: float) -> Iterable[CaseSignature]:
        """The cases whose similarity to `candidate` may reach `cut`, in insertion order."""
        probe = _Probe(candidate)
        if not probe.safe:
            return self.values()
        postings = self._postings
        shared = Counter(chain.from_iterable(postings.get(w, ()) for w in probe.words))
        keys: dict[int, list[str]] = {}
        for key in probe.keys:
            for serial in postings.get(key, ()):
                keys.setdefault(serial, []).append(key)
        concepts = set(
            chain.from_iterable(postings.get(CONCEPT_KEY + c, ()) for c in probe.concepts)
        )
        pool = shared.keys() | keys.keys() | concepts | self._unsafe
        if probe.unseen_bound() >= cut:
            # a case sharing nothing may still reach the cut: all of those without concepts,
            # and, when the candidate has none either, every case
            pool |= set(self._entries) if not probe.concepts else self._no_concepts
        entries = self._entries
        survivors: list[int] = []
        for serial in pool:
            entry = entries.get(serial)
            if entry is None:
                continue  # removed
            stats = entry[1]
            if not stats.safe:
                survivors.append(serial)
                continue
            overlap = min(shared.get(serial, 0), stats.n_words, len(probe.words))
            bound = probe.bound_from(
                stats,
                overlap=overlap,
                shared_keys=keys.get(serial, ()),
                shared_concepts=serial in concepts,
            )
            if bound >= cut:
                survivors.append(serial)
        survivors.sort()
        return [entries[s][0] for s in survivors]

    def _compact(self) -> None:
        postings: dict[str, list[int]] = {}
        posted = 0
        for serial, (case, stats) in self._entries.items():
            for key in (*set(case.words), *_index_keys(stats)):
                postings.setdefault(key, []).append(serial)
            posted += _posting_count(stats)
        self._postings, self._posted, self._stale = postings, posted, 0


def _posting_count(stats: _Stats) -> int:
    """Index entries of one case: its content words, bonus keys and concepts."""
    return stats.n_words + len(stats.keys) + len(stats.concept_set)
