"""`python -m phoihop_routing.evaluate [--corpus PATH] [--json]`: routing accuracy and
duplicate precision/recall on a labelled corpus (LABELING.md format).

Each record goes, in file order, through the functions the agents call: classify ->
bucket_key -> signature -> find_duplicate against the still-open cases of its bucket. A
merged record joins its target's group; otherwise it opens a case. Pairs of records in the
same final group are compared with the corpus' duplicate groups. A labelled pair that the
denunciation rule forbids merging (a `to_cao` with another kind or another commune,
`duplicates.denunciation_veto`) is withheld: reported apart, not counted as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from phoihop_common.config import default_config_dir, load_reference
from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    CaseSignature,
    bucket_key,
    denunciation_veto,
    find_duplicate,
    signature,
)
from phoihop_schemas.events import Kind

CORPUS_ENV = "PHOIHOP_EVAL_CORPUS"
TRIAGE_AGENCY = "TT_HDND"


class CorpusError(Exception):
    """The corpus file is missing or a line is not a labelled record."""


@dataclass(frozen=True)
class Record:
    """One labelled recommendation."""

    id: str
    kind: Kind
    locality: str
    text: str
    category: str
    level: str
    agency: str
    group: str | None
    channel: str = "tiep_xuc_cu_tri"
    reporter: dict[str, str] | None = None
    submitted_at: str | None = None


@dataclass
class Report:
    """Figures of one evaluation run."""

    corpus: str
    records: int
    rules_version: str
    category_accuracy: float
    level_accuracy: float
    agency_accuracy: float
    below_triage_threshold: int
    duplicate_precision: float
    duplicate_recall: float
    duplicate_pairs_expected: int
    duplicate_pairs_found: int
    duplicate_pairs_correct: int
    # labelled pairs the denunciation rule never merges (not in expected, precision, recall)
    duplicate_pairs_withheld: int = 0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    misclassified: list[dict[str, str]] = field(default_factory=list)
    wrong_pairs: list[list[str]] = field(default_factory=list)
    missed_pairs: list[list[str]] = field(default_factory=list)
    withheld_pairs: list[list[str]] = field(default_factory=list)


def default_corpus() -> Path:
    """`PHOIHOP_EVAL_CORPUS`, else `../shared/corpus/dev.jsonl` next to the checkout."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    repo_root = default_config_dir().resolve().parent.parent
    return repo_root.parent / "shared" / "corpus" / "dev.jsonl"


def load_corpus(path: Path) -> list[Record]:
    """Parse a JSON-lines corpus."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc}") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            expected = doc["expected"]
            records.append(
                Record(
                    id=doc["id"],
                    kind=Kind(doc["kind"]),
                    locality=doc["locality"],
                    text=doc["text"],
                    category=expected["category"],
                    level=expected["level"],
                    agency=expected["agency"],
                    group=doc.get("duplicate_group"),
                    channel=doc.get("channel", "tiep_xuc_cu_tri"),
                    reporter=doc.get("reporter"),
                    submitted_at=doc.get("submitted_at"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(f"{path}:{number}: not a labelled record ({exc})") from exc
    return records


@dataclass(frozen=True)
class Prediction:
    """What the pipeline decided for one record; `group` = the case it ended up in."""

    category: str
    level: str
    agency: str
    group: str
    rule: str = ""
    below_triage: bool = False


def evaluate(*, records: Sequence[Record], classifier: Classifier, corpus: str = "") -> Report:
    """Run the records through the routing functions (in file order) and score them.

    A record below the triage confidence counts with the agency the engine gives it
    (TT_HDND), as it would be routed.
    """
    open_cases: dict[str, list[CaseSignature]] = defaultdict(list)
    predictions: dict[str, Prediction] = {}
    for rec in records:
        c = classifier.classify(text=rec.text, kind=rec.kind, locality=rec.locality)
        below = c.decision.confidence < classifier.triage_below
        key = bucket_key(locality=rec.locality, classification=c)
        sig = signature(
            recommendation_id=rec.id, text=rec.text, locality=rec.locality, classification=c
        )
        found = find_duplicate(candidate=sig, open_cases=open_cases[key])
        if found is None:
            group = rec.id
            open_cases[key].append(sig)
        else:
            group = predictions[found[0].recommendation_id].group
        predictions[rec.id] = Prediction(
            category=c.category,
            level=c.level.value,
            agency=TRIAGE_AGENCY if below else c.agency,
            group=group,
            rule=c.decision.rule,
            below_triage=below,
        )
    return score(
        records=records, predictions=predictions, corpus=corpus, rules_version=classifier.version
    )


def score(
    *,
    records: Sequence[Record],
    predictions: dict[str, Prediction],
    corpus: str,
    rules_version: str,
) -> Report:
    """Accuracy of category, level, agency and pairwise duplicate precision/recall."""
    ok = Counter[str]()
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    misclassified: list[dict[str, str]] = []
    for rec in records:
        p = predictions[rec.id]
        ok["category"] += p.category == rec.category
        ok["level"] += p.level == rec.level
        ok["agency"] += p.agency == rec.agency
        confusion[rec.category][p.category] += 1
        if p.agency != rec.agency or p.category != rec.category:
            misclassified.append(
                {
                    "id": rec.id,
                    "expected": f"{rec.category}/{rec.level}/{rec.agency}",
                    "got": f"{p.category}/{p.level}/{p.agency}",
                    "rule": p.rule,
                }
            )
    predicted = _pairs((r.id, predictions[r.id].group) for r in records)
    labelled = _pairs((r.id, r.group) for r in records if r.group)
    withheld = _withheld(labelled, records)
    expected = labelled - withheld
    correct = predicted & expected
    n = len(records) or 1
    return Report(
        corpus=corpus,
        records=len(records),
        rules_version=rules_version,
        category_accuracy=round(ok["category"] / n, 4),
        level_accuracy=round(ok["level"] / n, 4),
        agency_accuracy=round(ok["agency"] / n, 4),
        below_triage_threshold=sum(p.below_triage for p in predictions.values()),
        duplicate_precision=round(len(correct) / len(predicted), 4) if predicted else 1.0,
        duplicate_recall=round(len(correct) / len(expected), 4) if expected else 1.0,
        duplicate_pairs_expected=len(expected),
        duplicate_pairs_found=len(predicted),
        duplicate_pairs_correct=len(correct),
        duplicate_pairs_withheld=len(withheld),
        confusion={k: dict(v) for k, v in sorted(confusion.items())},
        misclassified=misclassified,
        wrong_pairs=[list(p) for p in sorted(predicted - expected)],
        missed_pairs=[list(p) for p in sorted(expected - predicted)],
        withheld_pairs=[list(p) for p in sorted(withheld)],
    )


def _withheld(pairs: set[tuple[str, str]], records: Sequence[Record]) -> set[tuple[str, str]]:
    """Labelled pairs that the denunciation rule forbids merging."""
    by_id = {
        r.id: CaseSignature(recommendation_id=r.id, locality=r.locality, kind=r.kind.value)
        for r in records
    }
    return {p for p in pairs if denunciation_veto(by_id[p[0]], by_id[p[1]]) is not None}


def _pairs(members: Iterable[tuple[str, str | None]]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for rid, group in members:
        if group is not None:
            groups[group].append(rid)
    return {tuple(sorted(p)) for ids in groups.values() for p in combinations(ids, 2)}  # type: ignore[misc]


def render(report: Report) -> str:
    """Human-readable summary."""
    lines = [
        f"corpus {report.corpus} ({report.records} records), rules {report.rules_version}",
        f"category accuracy  {report.category_accuracy:.3f}",
        f"level accuracy     {report.level_accuracy:.3f}",
        f"agency accuracy    {report.agency_accuracy:.3f}",
        f"below triage threshold: {report.below_triage_threshold}",
        f"duplicates: precision {report.duplicate_precision:.3f}, "
        f"recall {report.duplicate_recall:.3f} "
        f"({report.duplicate_pairs_correct} correct of {report.duplicate_pairs_found} found, "
        f"{report.duplicate_pairs_expected} expected pairs)",
        f"withheld: {report.duplicate_pairs_withheld} labelled pairs join a denunciation with "
        "another kind or commune (never merged, not counted)",
        "",
        "per category (expected: correct/total, mistaken for)",
    ]
    for category, got in report.confusion.items():
        total = sum(got.values())
        wrong = ", ".join(f"{k} {v}" for k, v in sorted(got.items()) if k != category)
        lines.append(f"  {category:<20} {got.get(category, 0):>3}/{total:<3} {wrong}")
    if report.misclassified:
        lines.append("")
        lines.append("misclassified:")
        lines += [
            f"  {m['id']}: expected {m['expected']}, got {m['got']} ({m['rule']})"
            for m in report.misclassified
        ]
    if report.wrong_pairs:
        lines.append("wrongly merged pairs: " + ", ".join("-".join(p) for p in report.wrong_pairs))
    if report.missed_pairs:
        lines.append("missed pairs: " + ", ".join("-".join(p) for p in report.missed_pairs))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `make eval`."""
    parser = argparse.ArgumentParser(prog="python -m phoihop_routing.evaluate")
    parser.add_argument("--corpus", type=Path, default=None, help="labelled JSON-lines file")
    parser.add_argument("--config-dir", type=Path, default=None, help="deploy/config to use")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--via-bus",
        action="store_true",
        help="start the whole bus (broker + services) and submit every record through ingest; "
        "read the decisions back from audit",
    )
    args = parser.parse_args(argv)
    corpus = args.corpus or default_corpus()
    try:
        records = load_corpus(corpus)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = Classifier.from_config(reference=load_reference(args.config_dir))
    if args.via_bus:
        from phoihop_routing.evaluate_bus import evaluate_via_bus

        predictions = evaluate_via_bus(records=records, config_dir=args.config_dir)
        report = score(
            records=records,
            predictions=predictions,
            corpus=f"{corpus} (via the bus)",
            rules_version=classifier.version,
        )
    else:
        report = evaluate(records=records, classifier=classifier, corpus=str(corpus))
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False, indent=2))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
