"""Searching the open cases for a new one: the merge and suggestion bars, `find_duplicate`
(the case to merge into) and `rank_candidates` (merges, then suggestions to a person)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from phoihop_routing.duplicates.signatures import CROSS_COMMUNE_BUCKETS, CaseSignature
from phoihop_routing.duplicates.similarity import _compare, compare
from phoihop_routing.duplicates.stats import _BOUND_MARGIN, _Probe

# similarity needed to merge automatically: same field and level, or not
THRESHOLD = 0.3

THRESHOLD_OTHER_FIELD = 0.45

# similarity needed to be suggested to a person (below the merge bar)
SUGGEST = 0.15

SUGGEST_OTHER_FIELD = 0.25

# suggestions shown per new case
SUGGESTIONS = 3

# the merge bar is this much higher in a province-wide bucket (national, province): its
# concerns share their addressees and wording (Quốc hội, sửa luật) and come from everywhere
CROSS_COMMUNE_MARGIN = 0.05


@dataclass(frozen=True)
class Candidate:
    """An open case ranked for a new one: merge it (`verdict` "merge") or suggest it."""

    case: CaseSignature
    similarity: float
    verdict: str  # MERGE or SUGGEST_VERDICT
    evidence: tuple[str, ...] = field(default=())

    @property
    def recommendation_id(self) -> str:
        """The open case's id."""
        return self.case.recommendation_id


MERGE = "merge"

SUGGEST_VERDICT = "suggest"


def find_duplicate(
    *,
    candidate: CaseSignature,
    open_cases: Sequence[CaseSignature],
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
    dismissed: Collection[tuple[str, str]] = (),
) -> tuple[CaseSignature, float] | None:
    """The most similar open case above the bar, with its similarity, or None.

    Cases whose similarity provably stays under the bar (`_Probe.bound`) are skipped
    without a full comparison; the answer is the same as comparing every case. A pair in
    `dismissed` (either order) is never merged.
    """
    probe = _Probe(candidate)
    cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
    survivors = (case for case in open_cases if not probe.safe or probe.bound(case) >= cut)
    return _best(
        candidate=candidate,
        cases=survivors,
        threshold=threshold,
        threshold_other_field=threshold_other_field,
        dismissed=dismissed,
    )


def rank_candidates(
    candidate: CaseSignature,
    members: Iterable[CaseSignature],
    *,
    limit: int = SUGGESTIONS,
    dismissed: Collection[tuple[str, str]] = (),
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
    suggest: float = SUGGEST,
    suggest_other_field: float = SUGGEST_OTHER_FIELD,
) -> list[Candidate]:
    """The best open cases for a new one, at most `limit`, best first.

    A case at or above the merge bar of its field (`threshold`, `threshold_other_field`)
    has verdict "merge"; those come first, most similar first (the first of them is what
    `find_duplicate` returns). Cases between the suggestion bar (`suggest`,
    `suggest_other_field`) and the merge bar follow with verdict "suggest", ranked by their
    similarity above their field's bar. Vetoed cases and `dismissed` pairs never appear.
    Each candidate carries the comparison's evidence.
    """
    probe = _Probe(candidate)
    cut = min(suggest, suggest_other_field, threshold, threshold_other_field) - _BOUND_MARGIN
    return _ranked(
        candidate=candidate,
        cases=(case for case in members if not probe.safe or probe.bound(case) >= cut),
        limit=limit,
        dismissed=dismissed,
        bars=(threshold, threshold_other_field, suggest, suggest_other_field),
    )


def _margin(candidate: CaseSignature, case: CaseSignature) -> float:
    """How much higher the merge bar is for this pair (province-wide buckets)."""
    cross = candidate.bucket in CROSS_COMMUNE_BUCKETS and case.bucket == candidate.bucket
    return CROSS_COMMUNE_MARGIN if cross else 0.0


def is_dismissed(a: str, b: str, dismissed: Collection[tuple[str, str]]) -> bool:
    """True when a person said `a` and `b` are not duplicates (pairs in either order)."""
    return bool(dismissed) and ((a, b) in dismissed or (b, a) in dismissed)


def _best(
    *,
    candidate: CaseSignature,
    cases: Iterable[CaseSignature],
    threshold: float,
    threshold_other_field: float,
    dismissed: Collection[tuple[str, str]] = (),
) -> tuple[CaseSignature, float] | None:
    """The full comparison over `cases`, in order (the first of equally similar ones wins)."""
    best: tuple[CaseSignature, float] | None = None
    for case in cases:
        if case.recommendation_id == candidate.recommendation_id:
            continue
        if is_dismissed(candidate.recommendation_id, case.recommendation_id, dismissed):
            continue
        result = _compare(candidate, case, explain=False)
        if result.vetoed:
            continue
        same_field = case.category == candidate.category and case.level == candidate.level
        bar = (threshold if same_field else threshold_other_field) + _margin(candidate, case)
        if result.similarity >= bar and (best is None or result.similarity > best[1]):
            best = (case, result.similarity)
    return best


def _ranked(
    *,
    candidate: CaseSignature,
    cases: Iterable[CaseSignature],
    limit: int,
    dismissed: Collection[tuple[str, str]],
    bars: tuple[float, float, float, float],
) -> list[Candidate]:
    """The full comparison over `cases` for `rank_candidates` (ties: the earlier case)."""
    threshold, threshold_other_field, suggest, suggest_other_field = bars
    merges: list[tuple[float, int, CaseSignature, float, str]] = []
    suggestions: list[tuple[float, int, CaseSignature, float, str]] = []
    for order, case in enumerate(cases):
        if case.recommendation_id == candidate.recommendation_id:
            continue
        if is_dismissed(candidate.recommendation_id, case.recommendation_id, dismissed):
            continue
        result = _compare(candidate, case, explain=False)
        if result.vetoed:
            continue
        same_field = case.category == candidate.category and case.level == candidate.level
        merge_bar = (threshold if same_field else threshold_other_field) + _margin(candidate, case)
        suggest_bar = suggest if same_field else suggest_other_field
        sim = result.similarity
        if sim >= merge_bar:
            bar_text = f"similarity {sim:.3f} >= merge bar {merge_bar:g}"
            merges.append((-sim, order, case, sim, bar_text))
        elif sim >= suggest_bar:
            bar_text = f"similarity {sim:.3f}: suggested (>= {suggest_bar:g}, < {merge_bar:g})"
            suggestions.append((-(sim - merge_bar), order, case, sim, bar_text))
    chosen = [(t, MERGE) for t in sorted(merges, key=lambda t: t[:2])]
    chosen += [(t, SUGGEST_VERDICT) for t in sorted(suggestions, key=lambda t: t[:2])]
    # the evidence only for the candidates returned
    return [
        Candidate(case, sim, verdict, (bar_text, *compare(candidate, case).evidence))
        for (_, _, case, sim, bar_text), verdict in chosen[: max(0, limit)]
    ]
