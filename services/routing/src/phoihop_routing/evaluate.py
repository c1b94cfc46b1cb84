"""`python -m phoihop_routing.evaluate [--corpus PATH ...] [--json]`: routing accuracy and
duplicate precision/recall on labelled corpora (LABELING.md format). `--pairs FILE`
scores the matcher on the pairs people decided instead (`evaluate_pairs`).

Without `--corpus`: `PHOIHOP_EVAL_CORPUS`, else every corpus of the checkout's `corpus/`
(`REPO_CORPORA`: dev, written, blind, holdout, ...) that is present, else
`../shared/corpus/dev.jsonl`.

Each record goes, in file order, through the functions the agents call: classify ->
bucket_key -> signature -> the bucket's `DuplicateIndex.rank` against the still-open cases
of its bucket (its first candidate, when its verdict is "merge", is what `find` returns).
A merged record joins its target's group; otherwise it opens a case and gets up to three
suggested open cases (below the merge bar, above the suggestion bar). Pairs of
records in the same final group are compared with the corpus' duplicate groups:

- automatic merges: precision and recall of the machine's merges alone;
- with suggestions: recall when a person confirms every suggestion that is right (the
  labelled group of the suggested case is the record's) - the machine's merges plus the
  confirmed top-3 suggestions; and how many suggestions were shown, and how many were right.

A labelled pair that the denunciation rule forbids merging (a `to_cao` with another kind
or another commune, `duplicates.denunciation_veto`) is withheld: reported apart, not
counted as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from phoihop_common.config import default_config_dir, load_reference
from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    MERGE,
    SUGGESTIONS,
    CaseSignature,
    DuplicateIndex,
    bucket_key,
    denunciation_veto,
    signature,
)
from phoihop_routing.evaluate_pairs import PairsError, evaluate_pairs, load_pairs, render_pairs
from phoihop_routing.labelled import TRIAGE_AGENCY, Prediction, Record
from phoihop_schemas.events import Kind

CORPUS_ENV = "PHOIHOP_EVAL_CORPUS"


class CorpusError(Exception):
    """The corpus file is missing or a line is not a labelled record."""


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
    # automatic merges plus the suggestions a person would confirm (the right ones)
    recall_with_suggestions: float = 0.0
    duplicate_pairs_with_suggestions: int = 0
    suggestions_shown: int = 0
    suggestions_correct: int = 0
    records_with_suggestions: int = 0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    misclassified: list[dict[str, str]] = field(default_factory=list)
    wrong_pairs: list[list[str]] = field(default_factory=list)
    missed_pairs: list[list[str]] = field(default_factory=list)
    withheld_pairs: list[list[str]] = field(default_factory=list)
    # labelled pairs found only through a confirmed suggestion
    suggested_pairs: list[list[str]] = field(default_factory=list)


# the checkout's own labelled sets, evaluated by default in this order
REPO_CORPORA = (
    "dev.jsonl",
    "written.jsonl",
    "blind.jsonl",
    "holdout.jsonl",
    "holdout2.jsonl",
    "holdout3.jsonl",
)


def default_corpora() -> list[Path]:
    """`PHOIHOP_EVAL_CORPUS` (paths separated by the OS path separator), else the corpora of
    the checkout's `corpus/` that are present, else `../shared/corpus/dev.jsonl`."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    repo_root = default_config_dir().resolve().parent.parent
    present = [repo_root / "corpus" / name for name in REPO_CORPORA]
    present = [p for p in present if p.is_file()]
    return present or [repo_root.parent / "shared" / "corpus" / "dev.jsonl"]


def default_corpus() -> Path:
    """The first of `default_corpora()` (the development set when present)."""
    return default_corpora()[0]


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


def evaluate(
    *,
    records: Sequence[Record],
    classifier: Classifier,
    corpus: str = "",
    suggestions: int = SUGGESTIONS,
) -> Report:
    """Run the records through the routing functions (in file order) and score them.

    A record below the triage confidence counts with the agency the engine gives it
    (TT_HDND), as it would be routed. A record that is not merged gets up to `suggestions`
    suggested open cases.
    """
    open_cases: dict[str, DuplicateIndex] = defaultdict(DuplicateIndex)
    predictions: dict[str, Prediction] = {}
    for rec in records:
        c = classifier.classify(text=rec.text, kind=rec.kind, locality=rec.locality)
        below = c.decision.confidence < classifier.triage_below
        key = bucket_key(locality=rec.locality, classification=c)
        sig = signature(
            recommendation_id=rec.id, text=rec.text, locality=rec.locality, classification=c
        )
        bucket = open_cases[key]
        # one search: the first candidate is the merge `find` would make, the others are
        # suggestions when there is no merge
        ranked = bucket.rank(candidate=sig, limit=max(1, suggestions))
        suggested: tuple[str, ...] = ()
        if ranked and ranked[0].verdict == MERGE:
            group = predictions[ranked[0].recommendation_id].group
        else:
            group = rec.id
            suggested = tuple(r.recommendation_id for r in ranked[:suggestions])
            bucket.add(sig)
        predictions[rec.id] = Prediction(
            category=c.category,
            level=c.level.value,
            agency=TRIAGE_AGENCY if below else c.agency,
            group=group,
            rule=c.decision.rule,
            below_triage=below,
            suggested=suggested,
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
    confirmed, shown, right, asked = _confirmed_suggestions(records, predictions)
    with_suggestions = confirmed & expected
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
        recall_with_suggestions=(
            round(len(with_suggestions) / len(expected), 4) if expected else 1.0
        ),
        duplicate_pairs_with_suggestions=len(with_suggestions),
        suggestions_shown=shown,
        suggestions_correct=right,
        records_with_suggestions=asked,
        confusion={k: dict(v) for k, v in sorted(confusion.items())},
        misclassified=misclassified,
        wrong_pairs=[list(p) for p in sorted(predicted - expected)],
        missed_pairs=[list(p) for p in sorted(expected - predicted)],
        withheld_pairs=[list(p) for p in sorted(withheld)],
        suggested_pairs=[list(p) for p in sorted(with_suggestions - correct)],
    )


def _confirmed_suggestions(
    records: Sequence[Record], predictions: dict[str, Prediction]
) -> tuple[set[tuple[str, str]], int, int, int]:
    """Pairs in one group once a person confirms every right suggestion (`merge_into`).

    A suggestion is right when the suggested case and the record carry the same labelled
    group. Returns the pairs, the suggestions shown, the right ones and the records that
    got at least one.
    """
    label = {r.id: r.group for r in records}
    parent = {r.id: predictions[r.id].group for r in records}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in records:  # merged records point at their case (a root)
        parent.setdefault(parent[r.id], parent[r.id])
    shown = right = asked = 0
    for r in records:
        suggested = predictions[r.id].suggested
        shown += len(suggested)
        asked += bool(suggested)
        for case in suggested:
            if case in label and label[r.id] is not None and label[case] == label[r.id]:
                right += 1
                parent[root(r.id)] = root(case)
    return _pairs((r.id, root(r.id)) for r in records), shown, right, asked


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
        f"automatic merges: precision {report.duplicate_precision:.3f}, "
        f"recall {report.duplicate_recall:.3f} "
        f"({report.duplicate_pairs_correct} correct of {report.duplicate_pairs_found} found, "
        f"{report.duplicate_pairs_expected} expected pairs)",
        f"with top-{SUGGESTIONS} suggestions: recall {report.recall_with_suggestions:.3f} "
        f"({report.duplicate_pairs_with_suggestions} of {report.duplicate_pairs_expected} "
        f"pairs; {report.suggestions_shown} suggestions shown to "
        f"{report.records_with_suggestions} records, {report.suggestions_correct} right)",
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
    if report.suggested_pairs:
        lines.append(
            "found through a suggestion: " + ", ".join("-".join(p) for p in report.suggested_pairs)
        )
    return "\n".join(lines)


ViaBus = Callable[[Sequence[Record], Path | None], dict[str, Prediction]]


def main(
    argv: Sequence[str] | None = None,
    *,
    via_bus: ViaBus | None = None,
    prog: str = "python -m phoihop_routing.evaluate",
) -> int:
    """Entry point of `make eval`; `via_bus` (the testkit's) predicts through the real bus."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=None,
        help="labelled JSON-lines file (repeat for several; default: every corpus of the "
        "checkout's corpus/, else ../shared/corpus/dev.jsonl)",
    )
    parser.add_argument("--config-dir", type=Path, default=None, help="deploy/config to use")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (a list of reports when several corpora are evaluated)",
    )
    parser.add_argument(
        "--via-bus",
        action="store_true",
        help="start the whole bus and submit every record (`python -m "
        "phoihop_testkit.evaluate_bus`, or `make eval EVAL_ARGS=--via-bus`)",
    )
    parser.add_argument(
        "--pairs",
        type=Path,
        action="append",
        default=None,
        help="JSON-lines file of pairs people decided (audit's GET /v1/reports/labelled-pairs"
        "?format=jsonl); repeat for several; scores only these pairs",
    )
    args = parser.parse_args(argv)
    classifier = Classifier.from_config(reference=load_reference(args.config_dir))
    if args.pairs:
        return _main_pairs(args.pairs, classifier=classifier, as_json=args.json)
    if args.via_bus and via_bus is None:
        # the whole-bus launcher is development tooling, not part of the runtime library
        print(
            "error: --via-bus runs in the testkit: python -m phoihop_testkit.evaluate_bus "
            "(or make eval EVAL_ARGS=--via-bus)",
            file=sys.stderr,
        )
        return 2
    corpora: list[Path] = args.corpus or default_corpora()
    try:
        loaded = [(corpus, load_corpus(corpus)) for corpus in corpora]
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reports = [
        evaluate(records=records, classifier=classifier, corpus=str(corpus))
        if via_bus is None
        else score(
            records=records,
            predictions=via_bus(records, args.config_dir),
            corpus=f"{corpus} (via the bus)",
            rules_version=classifier.version,
        )
        for corpus, records in loaded
    ]
    _print([asdict(r) for r in reports], [render(r) for r in reports], as_json=args.json)
    return 0


def _main_pairs(paths: Sequence[Path], *, classifier: Classifier, as_json: bool) -> int:
    try:
        loaded = [(path, load_pairs(path)) for path in paths]
    except PairsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reports = [
        evaluate_pairs(pairs=pairs, classifier=classifier, source=str(path))
        for path, pairs in loaded
    ]
    _print([asdict(r) for r in reports], [render_pairs(r) for r in reports], as_json=as_json)
    return 0


def _print(docs: list[dict[str, object]], texts: list[str], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(docs[0] if len(docs) == 1 else docs, ensure_ascii=False, indent=2))
    else:
        print("\n\n".join(texts))


if __name__ == "__main__":
    sys.exit(main())
