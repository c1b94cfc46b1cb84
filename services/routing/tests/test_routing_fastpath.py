"""The fast paths give the same decisions as the plain ones.

- `RuleIndex.hits` (one pass over a text's words) equals matching every rule on its own.
- `find_duplicate` (similarity bound) and `DuplicateIndex.find` (inverted index) equal a
  comparison with every open case, on generated recommendations of one commune with
  near-duplicates, re-typed copies without diacritics and closed cases.
- `rank_candidates` and `DuplicateIndex.rank` (merges, then suggestions) equal ranking
  every open case, on every kind and field, in a commune and in a province-wide bucket.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import pytest

from bench.texts import generate
from phoihop_common.text import fold
from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    SUGGEST,
    SUGGEST_OTHER_FIELD,
    SUGGESTIONS,
    THRESHOLD,
    THRESHOLD_OTHER_FIELD,
    CaseSignature,
    DuplicateIndex,
    compare,
    find_duplicate,
    rank_candidates,
    signature,
)
from phoihop_routing.duplicates.search import _ranked
from phoihop_routing.textmatch import MatchText, fold_text
from phoihop_schemas.events import Kind

LOCALITY = "xa-an-binh"


def _texts(count: int, *, seed: int) -> list[str]:
    """Generated texts plus variants: words dropped, numbers changed, no diacritics."""
    rng = random.Random(seed)
    base = [g.body["text"] for g in generate(count, seed=seed)]
    out = list(base)
    for text in rng.sample(base, k=count // 2):
        words = text.split()
        op = rng.random()
        if op < 0.4:
            words = [w for w in words if rng.random() > 0.2]
        elif op < 0.7:
            words = [str(rng.randint(1, 9)) if w.isdigit() else w for w in words]
        else:
            words = fold(" ".join(words)).split()
        out.append(" ".join(words))
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def signatures(classifier: Classifier) -> list[CaseSignature]:
    out = []
    for i, text in enumerate(_texts(240, seed=5)):
        c = classifier.classify(text=text, kind=Kind.KIEN_NGHI, locality=LOCALITY)
        out.append(
            signature(recommendation_id=f"R{i}", text=text, locality=LOCALITY, classification=c)
        )
    return out


def _full_scan(
    candidate: CaseSignature,
    open_cases: Sequence[CaseSignature],
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
) -> tuple[str, float] | None:
    """The reference: compare with every case, first of the most similar wins."""
    best: tuple[str, float] | None = None
    for case in open_cases:
        if case.recommendation_id == candidate.recommendation_id:
            continue
        result = compare(candidate, case)
        same = case.category == candidate.category and case.level == candidate.level
        bar = threshold if same else threshold_other_field
        if (
            not result.vetoed
            and result.similarity >= bar
            and (best is None or result.similarity > best[1])
        ):
            best = (case.recommendation_id, result.similarity)
    return best


def _ids(found: tuple[CaseSignature, float] | None) -> tuple[str, float] | None:
    return None if found is None else (found[0].recommendation_id, found[1])


def test_rule_index_equals_matching_each_rule(classifier: Classifier) -> None:
    texts = [*_texts(120, seed=9), "", "Đ", "quoc lo 1A", "İ ÷ ø \u212a"]
    for text in texts:
        assert fold_text(text) == fold(text)
        mt = MatchText.of(text)
        for index in (classifier._category_index, classifier._level_index):
            assert index.hits(mt) == [rule.match(mt) for rule in index.rules], text


def test_find_duplicate_and_index_equal_a_full_scan(signatures: list[CaseSignature]) -> None:
    """Engine-like flow: a candidate either merges or opens a case; some cases close."""
    rng = random.Random(1)
    open_cases: list[CaseSignature] = []
    index = DuplicateIndex()
    merged = 0
    for sig in signatures:
        expected = _full_scan(sig, open_cases)
        assert _ids(find_duplicate(candidate=sig, open_cases=open_cases)) == expected
        assert _ids(index.find(candidate=sig)) == expected
        merged += expected is not None
        if expected is None:
            open_cases.append(sig)
            index.add(sig)
        if open_cases and rng.random() < 0.1:
            closed = open_cases.pop(rng.randrange(len(open_cases)))
            assert index.remove(closed.recommendation_id)
        assert [s.recommendation_id for s in index.values()] == [
            s.recommendation_id for s in open_cases
        ]
    assert 10 < merged < len(signatures) - 10  # both verdicts are exercised


@pytest.mark.parametrize(("threshold", "other"), [(0.0, 0.0), (0.2, 0.25), (0.6, 0.7)])
def test_every_case_in_one_bucket_any_threshold(
    signatures: list[CaseSignature], threshold: float, other: float
) -> None:
    """No dedup while filling (many near-identical open cases), thresholds varied."""
    opened, candidates = signatures[:200], signatures[200:]
    index = DuplicateIndex(opened)
    for sig in [*candidates, *opened[::17]]:
        expected = _full_scan(sig, opened, threshold, other)
        kwargs = {"threshold": threshold, "threshold_other_field": other}
        assert _ids(find_duplicate(candidate=sig, open_cases=opened, **kwargs)) == expected
        assert _ids(index.find(candidate=sig, **kwargs)) == expected


def test_hand_made_signatures_without_consistent_pairs_are_still_compared() -> None:
    """A signature whose pairs name words it does not list is never skipped by the bound."""
    a = CaseSignature(recommendation_id="a", locality=LOCALITY, pairs=("cau_sap",))
    b = CaseSignature(recommendation_id="b", locality=LOCALITY, pairs=("cau_sap",))
    index = DuplicateIndex([a])
    expected = _full_scan(b, [a], 0.2, 0.2)
    assert expected is not None
    assert _ids(index.find(candidate=b, threshold=0.2, threshold_other_field=0.2)) == expected
    assert (
        _ids(find_duplicate(candidate=b, open_cases=[a], threshold=0.2, threshold_other_field=0.2))
        == expected
    )


def test_index_replaces_in_place_and_removes(signatures: list[CaseSignature]) -> None:
    index = DuplicateIndex(signatures[:3])
    first = signatures[0]
    index.add(first)
    assert [s.recommendation_id for s in index.values()] == ["R0", "R1", "R2"]
    assert "R1" in index
    assert len(index) == 3
    assert index.get("R1") == signatures[1]
    assert index.remove("R1")
    assert not index.remove("R1")
    assert list(index) == ["R0", "R2"]


def _mixed(classifier: Classifier, *, bucket: str | None) -> list[CaseSignature]:
    """Generated texts of every template (kinds, fields) and their variants, one commune."""
    kinds = {g.body["text"]: Kind(g.body["kind"]) for g in generate(160, seed=11)}
    out = []
    for i, text in enumerate(_texts(160, seed=11)):
        kind = kinds.get(text, Kind.KIEN_NGHI if i % 3 else Kind.PHAN_ANH)
        c = classifier.classify(text=text, kind=kind, locality=LOCALITY)
        sig = signature(recommendation_id=f"M{i}", text=text, locality=LOCALITY, classification=c)
        if bucket is not None:
            sig = dataclasses.replace(sig, bucket=bucket)
        out.append(sig)
    return out


@pytest.mark.parametrize("bucket", [None, "province"])
def test_rank_and_index_rank_equal_ranking_every_case(
    classifier: Classifier, bucket: str | None
) -> None:
    """Engine-like flow; the reference ranks every open case with no bound at all."""
    signatures = _mixed(classifier, bucket=bucket)
    rng = random.Random(3)
    open_cases: list[CaseSignature] = []
    index = DuplicateIndex()
    suggested = merged = compared = scanned = 0
    bars = (THRESHOLD, THRESHOLD_OTHER_FIELD, SUGGEST, SUGGEST_OTHER_FIELD)
    for sig in signatures:
        expected = _ranked(
            candidate=sig, cases=open_cases, limit=SUGGESTIONS, dismissed=(), bars=bars
        )
        assert rank_candidates(sig, open_cases) == expected
        assert index.rank(candidate=sig) == expected
        merged += bool(expected) and expected[0].verdict == "merge"
        suggested += bool(expected) and expected[0].verdict == "suggest"
        compared += len(list(index._plausible(sig, min(bars) - 1e-3)))
        scanned += len(open_cases)
        if not expected or expected[0].verdict != "merge":
            open_cases.append(sig)
            index.add(sig)
        if open_cases and rng.random() < 0.1:
            index.remove(open_cases.pop(rng.randrange(len(open_cases))).recommendation_id)
    assert merged > 5  # both verdicts are exercised
    assert suggested > 5
    # the index skips most cases (vetoed for sure, or under the suggestion bar)
    assert compared * 2 < scanned


@pytest.mark.parametrize(
    "names_b",
    [
        pytest.param(("bridge:khe can",), id="shared-strong-identifier"),
        pytest.param((), id="name-that-is-the-other's-identifier"),
    ],
)
def test_a_shared_strong_object_lifts_the_weak_veto_in_the_index(
    names_b: tuple[str, ...],
) -> None:
    """Other hamlets, one bridge: `compare` does not veto, so the index must compare."""
    common = {
        "locality": LOCALITY,
        "bucket": f"local:{LOCALITY}",
        "kind": "kien_nghi",
        "category": "GIAO_THONG",
        "level": "xa",
        "words": ("cau", "sap", "lan", "can", "hoc", "sinh"),
        "concepts": ("cau",),
    }
    a = CaseSignature(recommendation_id="a", identifiers=("hamlet:3", "bridge:khe can"), **common)
    b = CaseSignature(
        recommendation_id="b",
        identifiers=("hamlet:5", *names_b),
        names=() if names_b else ("khe can",),
        **common,
    )
    assert not compare(b, a).vetoed
    bars = (THRESHOLD, THRESHOLD_OTHER_FIELD, SUGGEST, SUGGEST_OTHER_FIELD)
    expected = _ranked(candidate=b, cases=[a], limit=SUGGESTIONS, dismissed=(), bars=bars)
    assert expected
    assert DuplicateIndex([a]).rank(candidate=b) == expected
    assert rank_candidates(b, [a]) == expected
    # and without the bridge, the hamlets veto: the index skips the case
    lone = dataclasses.replace(b, identifiers=("hamlet:5",), names=())
    assert compare(lone, a).vetoed
    assert list(DuplicateIndex([a])._plausible(lone, min(bars))) == []


def test_an_identifier_without_a_name_is_never_vetoed_by_the_index() -> None:
    """An empty name is contained in any other (`compare` lifts the veto): never skipped."""
    words = ("den", "chieu", "sang", "duong", "lien", "thon")
    a = CaseSignature(
        recommendation_id="a", locality=LOCALITY, words=words, identifiers=("hamlet:",)
    )
    b = CaseSignature(
        recommendation_id="b", locality=LOCALITY, words=words, identifiers=("hamlet:5",)
    )
    assert not compare(b, a).vetoed
    bars = (THRESHOLD, THRESHOLD_OTHER_FIELD, SUGGEST, SUGGEST_OTHER_FIELD)
    expected = _ranked(candidate=b, cases=[a], limit=SUGGESTIONS, dismissed=(), bars=bars)
    assert expected
    assert DuplicateIndex([a]).rank(candidate=b) == expected
