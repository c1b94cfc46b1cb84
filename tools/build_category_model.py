"""Fit routing's category model on the labelled corpora (`deploy/config/category_model.json`).

    python tools/build_category_model.py            # fit on TRAINING_SETS and write the file
    python tools/build_category_model.py --check    # exit 1 when the file is not the fit of
                                                    # the corpora as they are now
    python tools/build_category_model.py --report   # each training set held out in turn

scikit-learn fits it (a dev dependency: routing reads the file with numpy only). The
examples are the text and expected category of every item of `TRAINING_SETS`, prepared as
the rules prepare a text (abbreviations written out, folded). The last held-out set
(`corpus/holdout3.jsonl`) is never among them: it is the judge of the model. `--report`
fits on all training sets but one and scores the one left out, for each in turn (accuracy,
and how often a guess over `TAKE_MARGIN` was wrong), which is how the bar was chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from phoihop_common.config import load_reference
from phoihop_routing.classify import Classifier
from phoihop_routing.learned import (
    ANALYZERS,
    MODEL_FILE,
    MODEL_FORMAT,
    TAKE_MARGIN,
    CategoryModel,
    encode_coefficients,
)

ROOT = Path(__file__).resolve().parents[1]
TRAINING_SETS = ("dev", "written", "blind", "holdout", "holdout2")
HELD_OUT = ("holdout3",)
# features seen in fewer documents than this are left out (keeps the file small)
MIN_DF = {"words": 2, "chars": 3}


def examples(corpus_dir: Path) -> list[dict[str, str]]:
    """Set, id, text and category of every training item, in set and file order."""
    out = []
    for name in TRAINING_SETS:
        for line in (corpus_dir / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                out.append(
                    {
                        "set": name,
                        "id": doc["id"],
                        "text": doc["text"],
                        "category": doc["expected"]["category"],
                    }
                )
    return out


def fit(texts: Sequence[str], categories: Sequence[str]) -> Pipeline:
    """TF-IDF of `learned.words` and `learned.chars` + a balanced linear SVM."""
    features = FeatureUnion(
        [
            (
                name,
                TfidfVectorizer(analyzer=ANALYZERS[name], sublinear_tf=True, min_df=MIN_DF[name]),
            )
            for name in ("words", "chars")
        ]
    )
    svm = LinearSVC(C=1.0, class_weight="balanced", random_state=0)
    return Pipeline([("features", features), ("svm", svm)]).fit(list(texts), list(categories))


def export(pipeline: Pipeline, *, version: str, trained_on: dict[str, int]) -> dict[str, Any]:
    """The fitted pipeline as the document `CategoryModel` reads."""
    parts = []
    for name, vectorizer in pipeline.named_steps["features"].transformer_list:
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        parts.append(
            {"analyzer": name, "terms": terms, "idf": [round(float(x), 6) for x in vectorizer.idf_]}
        )
    svm = pipeline.named_steps["svm"]
    return {
        "format": MODEL_FORMAT,
        "version": version,
        "trained_on": trained_on,
        "classes": [str(c) for c in svm.classes_],
        "intercept": [round(float(x), 6) for x in svm.intercept_],
        "parts": parts,
        "coef": encode_coefficients(svm.coef_),
    }


def version_of(rows: list[dict[str, str]]) -> str:
    """A digest of the examples and the fit's settings: a different one, a stale file."""
    digest = hashlib.sha256(json.dumps(MIN_DF, sort_keys=True).encode())
    for r in rows:
        digest.update(f"{r['category']}\t{r['text']}\n".encode())
    return f"svm.{digest.hexdigest()[:12]}"


def build(rows: list[dict[str, str]], classifier: Classifier) -> tuple[dict[str, Any], Pipeline]:
    """Fit on `rows` and export; also the pipeline (tests compare the two)."""
    pipeline = fit(
        [classifier.prepare(r["text"]).folded for r in rows], [r["category"] for r in rows]
    )
    counts = {name: sum(r["set"] == name for r in rows) for name in TRAINING_SETS}
    return export(pipeline, version=version_of(rows), trained_on=counts), pipeline


def report(rows: list[dict[str, str]], classifier: Classifier) -> None:
    """Each training set held out in turn: accuracy and margins of the model's guesses."""
    for held in TRAINING_SETS:
        document, _ = build([r for r in rows if r["set"] != held], classifier)
        model = CategoryModel(document)
        right = wrong = sure_right = sure_wrong = 0
        for r in (r for r in rows if r["set"] == held):
            guess = model.guess(classifier.prepare(r["text"]).folded)
            ok = guess.category == r["category"]
            right, wrong = right + ok, wrong + (not ok)
            if guess.sure:
                sure_right, sure_wrong = sure_right + ok, sure_wrong + (not ok)
        print(
            f"{held:9} {right + wrong:4} items  model accuracy {right / (right + wrong):.3f}  "
            f"sure (margin >= {TAKE_MARGIN}): {sure_right} right, {sure_wrong} wrong"
        )


def main(argv: list[str] | None = None) -> int:
    """Write, check or report on the model file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, default=ROOT / "corpus")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "deploy" / "config")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    group.add_argument("--report", action="store_true", help="each training set held out")
    args = parser.parse_args(argv)
    rows = examples(args.corpus_dir)
    # the rules alone prepare the texts (the model file is what is being built)
    reference = load_reference(args.config_dir)
    classifier = Classifier.from_config(reference=reference, model_path=Path("/nonexistent"))
    target = args.config_dir / MODEL_FILE
    if args.report:
        report(rows, classifier)
        return 0
    if args.check:
        current = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        if current.get("version") != version_of(rows):
            print(f"{target} is stale: run python tools/build_category_model.py")
            return 1
        print(f"{target}: {len(rows)} examples, up to date ({current['version']})")
        return 0
    document, _ = build(rows, classifier)
    target.write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")
    size = target.stat().st_size // 1024
    print(f"wrote {target} ({size} KiB): {len(rows)} examples from {', '.join(TRAINING_SETS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
