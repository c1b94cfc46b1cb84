"""A learned second opinion on the category (scikit-learn), for texts the rules are unsure of.

The rules decide (`classify`); this model is asked only when their confidence is under the
triage bar or nothing was placed. It is a linear SVM (`LinearSVC`, balanced classes) over
TF-IDF of folded words and word pairs plus character n-grams (2-5, within words), trained at
load on the labelled examples in `deploy/config/category_examples.jsonl` (text + category,
built from the labelled corpora by `tools/build_category_examples.py`; the final held-out set
is never among them). Training takes well under a second for ~600 examples, so no model file
is shipped: the same examples always give the same model.

Its `margin` (top decision value minus the runner-up's) says how sure it is; `Guess.sure`
applies the bar (`TAKE_MARGIN`) above which it may place a text the rules could not.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from phoihop_common.config import ConfigError

EXAMPLES_FILE = "category_examples.jsonl"
# with each training set held out in turn (tools/build_category_examples.py --report), 7 of
# 469 guesses with a margin of at least 0.3 were wrong, and 44 of the 91 below it
TAKE_MARGIN = 0.3
MIN_EXAMPLES = 20


class ExamplesError(ConfigError):
    """The labelled examples file is missing fields or too small to learn from."""


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    category: str


@dataclass(frozen=True)
class Guess:
    """The model's best category and how far ahead of the runner-up it is."""

    category: str
    margin: float
    runner_up: str

    @property
    def sure(self) -> bool:
        """Sure enough to place a text the rules could not place."""
        return self.margin >= TAKE_MARGIN

    def describe(self) -> str:
        """'model GIAO_THONG (margin 0.42 over XAY_DUNG_QUY_HOACH)' for a decision's evidence."""
        return f"model {self.category} (margin {self.margin:.2f} over {self.runner_up})"


@dataclass(frozen=True)
class _Part:
    """One fitted TF-IDF vectorizer of the union: its analyzer, vocabulary, idf, column offset."""

    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: Any  # numpy array of the vectorizer's idf_
    offset: int

    def features(self, text: str) -> tuple[Any, Any]:
        """Columns and L2-normalised sublinear tf-idf weights of one text (numpy arrays)."""
        vocabulary = self.vocabulary
        counts = Counter(vocabulary[t] for t in self.analyzer(text) if t in vocabulary)
        cols = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), float, len(counts)))) * self.idf[cols]
        norm = float(np.sqrt(weights @ weights)) or 1.0
        return cols + self.offset, weights / norm


class CategoryModel:
    """TF-IDF (words, word pairs, character n-grams) + linear SVM over folded text.

    scikit-learn fits it; one text is scored from the fitted analyzers, vocabularies, idf
    and coefficients directly (`decision_values`, the same numbers as the pipeline's
    `decision_function`): its per-call sparse-matrix set-up costs more than the arithmetic.
    """

    def __init__(self, pipeline: Pipeline, *, version: str) -> None:
        self._pipeline = pipeline
        self.version = version
        parts, offset = [], 0
        for _, vectorizer in pipeline.named_steps["features"].transformer_list:
            parts.append(
                _Part(
                    analyzer=vectorizer.build_analyzer(),
                    vocabulary=dict(vectorizer.vocabulary_),
                    idf=vectorizer.idf_,
                    offset=offset,
                )
            )
            offset += len(vectorizer.vocabulary_)
        svm = pipeline.named_steps["svm"]
        self._parts = tuple(parts)
        self._coef = np.asarray(svm.coef_)
        self._intercept = np.asarray(svm.intercept_)
        self._classes = [str(c) for c in svm.classes_]

    @classmethod
    def train(cls, *, texts: Sequence[str], categories: Sequence[str]) -> CategoryModel:
        """Fit on folded texts (`MatchText.folded`) and their categories."""
        if len(texts) < MIN_EXAMPLES or len(set(categories)) < 2:
            raise ExamplesError(f"too few examples to learn from ({len(texts)})")
        features = FeatureUnion(
            [
                ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                    ),
                ),
            ]
        )
        pipeline = Pipeline(
            [("features", features), ("svm", LinearSVC(C=1.0, class_weight="balanced"))]
        )
        pipeline.fit(list(texts), list(categories))
        digest = hashlib.sha256()
        for text, category in zip(texts, categories, strict=True):
            digest.update(f"{category}\t{text}\n".encode())
        return cls(pipeline, version=f"svm.{digest.hexdigest()[:10]}")

    def decision_values(self, folded: str) -> Any:
        """The SVM's decision value of each category (`classes`) for one folded text."""
        found = [part.features(folded) for part in self._parts]
        cols = np.concatenate([c for c, _ in found])
        weights = np.concatenate([w for _, w in found])
        return self._coef[:, cols] @ weights + self._intercept

    @property
    def classes(self) -> list[str]:
        """The categories, in the order of `decision_values`."""
        return list(self._classes)

    def guess(self, folded: str) -> Guess:
        """The best category for one folded text."""
        scores = self.decision_values(folded)
        order = scores.argsort()[::-1]
        top, second = int(order[0]), int(order[1])
        return Guess(
            category=self._classes[top],
            margin=round(float(scores[top] - scores[second]), 3),
            runner_up=self._classes[second],
        )

    def pipeline_values(self, folded: str) -> Any:
        """scikit-learn's own `decision_function` for one text (what `decision_values` equals)."""
        return self._pipeline.decision_function([folded])[0]


def load_examples(path: Path) -> list[Example]:
    """Read `category_examples.jsonl` (one `{"text", "category"}` object per line)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            out.append(Example(text=str(doc["text"]), category=str(doc["category"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExamplesError(f"{path}:{number}: not a labelled example ({exc})") from exc
    return out


def check_categories(examples: Iterable[Example], *, known: Iterable[str]) -> None:
    """Every example's category is a known code."""
    codes = set(known)
    unknown = sorted({e.category for e in examples} - codes)
    if unknown:
        raise ExamplesError(f"examples name unknown categories: {', '.join(unknown)}")
