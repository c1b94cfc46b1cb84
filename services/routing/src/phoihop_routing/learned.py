"""A learned second opinion on the category, for texts the rules are unsure of.

The rules decide (`classify`); this model is asked only when their confidence is under the
triage bar or nothing was placed. It is a linear SVM (scikit-learn's `LinearSVC`, balanced
classes) over TF-IDF of folded words and word pairs plus character n-grams (2-5, within
words), fitted offline on the labelled corpora by `tools/build_category_model.py` and
shipped as data: `deploy/config/category_model.json` (terms, idf, the coefficients as
float16). The final held-out set is never among its examples.

At run time only numpy is needed: `CategoryModel.decision_values` computes what the fitted
pipeline's `decision_function` gives (the same `words` / `chars` analyzers fed the fit), so
routing neither imports scikit-learn (~100 MB, seconds to import) nor trains at start-up.
Its `margin` (top decision value minus the runner-up's) says how sure it is; `Guess.sure`
applies the bar (`TAKE_MARGIN`) above which it may place a text the rules could not.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from phoihop_common.config import ConfigError

MODEL_FILE = "category_model.json"
MODEL_FORMAT = 1
# with each training set held out in turn (tools/build_category_model.py --report), guesses
# with a margin of at least 0.3 were right 98 % of the time, those below it about half
TAKE_MARGIN = 0.3
CHAR_NGRAMS = (2, 5)


class ModelError(ConfigError):
    """The model file is missing fields or does not fit together."""


def words(text: str) -> list[str]:
    """Words of two letters or more and each pair of neighbours (a folded text)."""
    tokens = [w for w in text.split() if len(w) > 1]
    return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


def chars(text: str) -> list[str]:
    """Character n-grams (2-5) inside each word padded with a space at both ends."""
    low, high = CHAR_NGRAMS
    out: list[str] = []
    for word in text.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            if n >= size:
                out.append(padded)  # a short word counts once, whole
                break
            out.extend(padded[i : i + n] for i in range(size - n + 1))
    return out


ANALYZERS = {"words": words, "chars": chars}


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
    """One TF-IDF block of the features: its analyzer, vocabulary, idf and column offset."""

    analyzer: str
    vocabulary: dict[str, int]
    idf: Any  # numpy array
    offset: int

    def features(self, text: str) -> tuple[Any, Any]:
        """Columns and L2-normalised sublinear tf-idf weights of one text (numpy arrays)."""
        vocabulary = self.vocabulary
        found = Counter(vocabulary[t] for t in ANALYZERS[self.analyzer](text) if t in vocabulary)
        cols = np.fromiter(found.keys(), dtype=np.intp, count=len(found))
        weights = (1.0 + np.log(np.fromiter(found.values(), float, len(found)))) * self.idf[cols]
        norm = float(np.sqrt(weights @ weights)) or 1.0
        return cols + self.offset, weights / norm


class CategoryModel:
    """The fitted model as data: per block terms and idf, then class coefficients."""

    def __init__(self, document: dict[str, Any]) -> None:
        try:
            if document["format"] != MODEL_FORMAT:
                raise ModelError(f"model format {document['format']!r}, expected {MODEL_FORMAT}")
            self.version = str(document["version"])
            self._classes = [str(c) for c in document["classes"]]
            parts, offset = [], 0
            for block in document["parts"]:
                terms = list(block["terms"])
                if block["analyzer"] not in ANALYZERS or len(block["idf"]) != len(terms):
                    raise ModelError(f"bad feature block {block['analyzer']!r}")
                vocabulary = {t: i for i, t in enumerate(terms)}
                idf = np.asarray(block["idf"], dtype=float)
                parts.append(_Part(block["analyzer"], vocabulary, idf, offset))
                offset += len(terms)
            coef = document["coef"]
            raw = np.frombuffer(base64.b64decode(coef["base64"]), dtype=np.dtype(coef["dtype"]))
            self._coef = raw.astype(float).reshape(len(self._classes), offset)
            self._intercept = np.asarray(document["intercept"], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a category model ({exc})") from exc
        if self._intercept.shape != (len(self._classes),) or len(self._classes) < 2:
            raise ModelError("intercepts and classes do not match")
        self._parts = tuple(parts)

    @classmethod
    def load(cls, path: Path) -> CategoryModel:
        """Read `category_model.json`."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: {exc}") from exc
        return cls(document)

    @property
    def classes(self) -> list[str]:
        """The categories, in the order of `decision_values`."""
        return list(self._classes)

    def decision_values(self, folded: str) -> Any:
        """The SVM's decision value of each category (`classes`) for one folded text."""
        found = [part.features(folded) for part in self._parts]
        cols = np.concatenate([c for c, _ in found])
        weights = np.concatenate([w for _, w in found])
        return self._coef[:, cols] @ weights + self._intercept

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


def encode_coefficients(coef: Any) -> dict[str, Any]:
    """A class x feature matrix as float16 in base64 (what `CategoryModel` reads)."""
    matrix = np.ascontiguousarray(np.asarray(coef, dtype=np.float16))
    return {
        "dtype": "float16",
        "shape": list(matrix.shape),
        "base64": base64.b64encode(matrix.tobytes()).decode("ascii"),
    }
