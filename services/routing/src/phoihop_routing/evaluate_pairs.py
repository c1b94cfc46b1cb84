"""Score the duplicate matcher on the pairs people decided (`make eval EVAL_ARGS="--pairs F"`).

The file is what audit's `GET /v1/reports/labelled-pairs?format=jsonl` returns: one JSON
object per line with `a`, `b`, `label` (`duplicate` for a `merge_into`, `not_duplicate`
for an `unmerge` or a dismissed suggestion) and both cases' `text_*`, `kind_*`,
`locality_*`. Each pair goes through the functions the agents call (classify, bucket_key,
signature, `DuplicateIndex.rank` with `b` as the open case and `a` as the newcomer), giving
the verdict routing would reach today: `merge`, `suggest`, `none` (same bucket, below the
suggestion bar) or `apart` (different buckets: never compared).

- automatic merges: precision over the decided pairs it would merge, recall of the
  `duplicate` pairs;
- with suggestions: recall of the `duplicate` pairs merged or suggested;
- `not_duplicate` pairs it would still merge (the corrections it would need again) and
  still suggest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    MERGE,
    SUGGEST_VERDICT,
    DuplicateIndex,
    bucket_key,
    signature,
)
from phoihop_schemas.events import Kind

Label = Literal["duplicate", "not_duplicate"]
Verdict = Literal["merge", "suggest", "none", "apart"]


class PairsError(Exception):
    """The pairs file is missing or a line is not a labelled pair."""


@dataclass(frozen=True)
class LabelledPair:
    """Two cases and what a person decided about them."""

    a: str
    b: str
    label: Label
    text_a: str
    text_b: str
    kind_a: Kind
    kind_b: Kind
    locality_a: str
    locality_b: str


@dataclass
class PairsReport:
    """Figures of one pairs file."""

    source: str
    rules_version: str
    pairs: int = 0
    duplicates: int = 0
    not_duplicates: int = 0
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> verdict -> n
    merge_precision: float | None = None
    merge_recall: float | None = None
    recall_with_suggestions: float | None = None
    wrong_merges: list[tuple[str, str]] = field(default_factory=list)
    missed: list[tuple[str, str]] = field(default_factory=list)


def load_pairs(path: Path) -> list[LabelledPair]:
    """Read a JSON-lines file of decided pairs (audit's labelled-pairs export)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PairsError(f"{path}: {exc}") from exc
    pairs: list[LabelledPair] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            label = raw["label"]
            if label not in ("duplicate", "not_duplicate"):
                raise ValueError(f"label {label!r}")
            pairs.append(
                LabelledPair(
                    a=str(raw["a"]),
                    b=str(raw["b"]),
                    label=label,
                    text_a=str(raw["text_a"]),
                    text_b=str(raw["text_b"]),
                    kind_a=Kind(raw["kind_a"]),
                    kind_b=Kind(raw["kind_b"]),
                    locality_a=str(raw["locality_a"]),
                    locality_b=str(raw["locality_b"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PairsError(f"{path}:{number}: not a labelled pair ({exc})") from exc
    return pairs


def verdict(pair: LabelledPair, *, classifier: Classifier) -> Verdict:
    """What routing would decide today for `a` arriving while `b` is open."""
    ca = classifier.classify(text=pair.text_a, kind=pair.kind_a, locality=pair.locality_a)
    cb = classifier.classify(text=pair.text_b, kind=pair.kind_b, locality=pair.locality_b)
    if bucket_key(locality=pair.locality_a, classification=ca) != bucket_key(
        locality=pair.locality_b, classification=cb
    ):
        return "apart"
    sig_a = signature(
        recommendation_id=pair.a, text=pair.text_a, locality=pair.locality_a, classification=ca
    )
    sig_b = signature(
        recommendation_id=pair.b, text=pair.text_b, locality=pair.locality_b, classification=cb
    )
    ranked = DuplicateIndex([sig_b]).rank(candidate=sig_a, limit=1)
    if not ranked:
        return "none"
    if ranked[0].verdict == MERGE:
        return "merge"
    return "suggest" if ranked[0].verdict == SUGGEST_VERDICT else "none"


def evaluate_pairs(
    *, pairs: Sequence[LabelledPair], classifier: Classifier, source: str = ""
) -> PairsReport:
    """Verdict per pair and the merge precision / recall figures."""
    report = PairsReport(source=source, rules_version=classifier.version, pairs=len(pairs))
    merged_right = merged_wrong = found = 0
    for pair in pairs:
        v = verdict(pair, classifier=classifier)
        counts = report.verdicts.setdefault(pair.label, {})
        counts[v] = counts.get(v, 0) + 1
        if pair.label == "duplicate":
            report.duplicates += 1
            merged_right += v == "merge"
            found += v in ("merge", "suggest")
            if v not in ("merge", "suggest"):
                report.missed.append((pair.a, pair.b))
        else:
            report.not_duplicates += 1
            if v == "merge":
                merged_wrong += 1
                report.wrong_merges.append((pair.a, pair.b))
    merges = merged_right + merged_wrong
    report.merge_precision = merged_right / merges if merges else None
    if report.duplicates:
        report.merge_recall = merged_right / report.duplicates
        report.recall_with_suggestions = found / report.duplicates
    return report


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_pairs(report: PairsReport) -> str:
    """Plain-text report."""
    lines = [
        f"pairs: {report.source} (rules {report.rules_version})",
        f"decided pairs: {report.pairs} ({report.duplicates} duplicate, "
        f"{report.not_duplicates} not duplicate)",
        f"automatic merges: precision {_fmt(report.merge_precision)}, "
        f"recall {_fmt(report.merge_recall)}",
        f"recall with suggestions: {_fmt(report.recall_with_suggestions)}",
    ]
    for label, counts in sorted(report.verdicts.items()):
        shown = ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
        lines.append(f"  {label}: {shown}")
    if report.wrong_merges:
        lines.append("still merged: " + ", ".join(f"{a}-{b}" for a, b in report.wrong_merges))
    if report.missed:
        lines.append("missed: " + ", ".join(f"{a}-{b}" for a, b in report.missed))
    return "\n".join(lines)
