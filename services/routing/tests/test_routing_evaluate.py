"""The evaluator: figures on the labelled dev corpus, JSON output, pairing of merged items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoihop_routing.classify import Classifier
from phoihop_routing.evaluate import (
    REPO_CORPORA,
    Prediction,
    Record,
    default_corpora,
    default_corpus,
    evaluate,
    load_corpus,
    main,
    score,
)
from phoihop_schemas.events import Kind


def _record(rid: str, text: str, group: str | None, **expected: str) -> str:
    labels = {"category": "GIAO_THONG", "level": "xa", "agency": "UBND_XA_XA_TAN_PHU"}
    labels.update(expected)
    return json.dumps(
        {
            "id": rid,
            "kind": "kien_nghi",
            "channel": "tiep_xuc_cu_tri",
            "locality": "xa-tan-phu",
            "submitted_at": "2026-03-01",
            "text": text,
            "reporter": None,
            "expected": labels,
            "duplicate_group": group,
        },
        ensure_ascii=False,
    )


def test_dev_corpus_figures(classifier: Classifier) -> None:
    corpus = default_corpus()
    if not corpus.is_file():
        pytest.skip(f"corpus {corpus} not present")
    report = evaluate(records=load_corpus(corpus), classifier=classifier)
    assert report.agency_accuracy >= 0.85
    assert report.duplicate_precision >= 0.85
    assert report.duplicate_recall >= 0.85
    assert report.category_accuracy >= 0.8
    assert report.level_accuracy >= 0.8


WRITTEN = Path(__file__).parent / "data" / "written.jsonl"


def test_written_corpus_figures(classifier: Classifier) -> None:
    """A second labelled set, worded unlike dev.jsonl and with other named objects."""
    records = load_corpus(WRITTEN)
    assert len(records) >= 100
    report = evaluate(records=records, classifier=classifier)
    assert report.category_accuracy >= 0.95
    assert report.level_accuracy >= 0.95
    assert report.agency_accuracy >= 0.95
    assert report.duplicate_precision >= 0.95
    # national concerns merge automatically only above a higher bar; the rest are suggested
    assert report.duplicate_recall >= 0.85
    assert report.recall_with_suggestions >= 0.95


def test_merged_items_join_their_targets_group(tmp_path: Path, classifier: Classifier) -> None:
    corpus = tmp_path / "mini.jsonl"
    lines = [
        _record("T1", "Đề nghị xã làm đường liên xóm 3 – xóm 9, mặt đường lầy lội.", "G1"),
        _record("T2", "Đề nghị xã làm đường liên xóm 4 – xóm 7, mặt đường lầy lội.", None),
        _record("T3", "Tiep tuc de nghi xa lam duong lien xom 3 - xom 9, duong lay loi.", "G1"),
        _record("T4", "Đường liên xóm 3 – xóm 9 lầy lội, đề nghị bê tông hóa sớm.", "G1"),
        _record(
            "T5",
            "Xin cảm ơn các đại biểu.",
            None,
            category="KHAC",
            level="tinh",
            agency="TT_HDND",
        ),
    ]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = evaluate(records=load_corpus(corpus), classifier=classifier)
    assert report.records == 5
    assert report.agency_accuracy == 1.0
    assert report.duplicate_pairs_expected == 3  # T1-T3, T1-T4, T3-T4
    assert (report.duplicate_precision, report.duplicate_recall) == (1.0, 1.0)


def test_main_prints_json_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(_record("T1", "Đề nghị xã sửa đường liên xóm 1.", None) + "\n", "utf-8")
    monkeypatch.setenv("PHOIHOP_EVAL_CORPUS", str(corpus))
    assert main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 1
    assert {"category_accuracy", "level_accuracy", "agency_accuracy", "confusion"} <= set(out)
    assert main(["--corpus", str(corpus)]) == 0
    assert "agency accuracy" in capsys.readouterr().out


def test_every_corpus_of_the_checkout_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHOIHOP_EVAL_CORPUS", raising=False)
    corpora = default_corpora()
    repo_corpus = Path(__file__).resolve().parents[3] / "corpus"
    present = [repo_corpus / n for n in REPO_CORPORA if (repo_corpus / n).is_file()]
    if present:
        assert corpora == present
        assert default_corpus() == present[0]
    # several --corpus: one report each, a JSON list
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text(_record("T1", "Đề nghị xã sửa đường liên xóm 1.", None) + "\n", "utf-8")
    two.write_text(_record("T2", "Đề nghị xã sửa đường liên xóm 2.", None) + "\n", "utf-8")
    assert main(["--corpus", str(one), "--corpus", str(two), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["corpus"] for r in out] == [str(one), str(two)]
    assert {"recall_with_suggestions", "suggestions_shown"} <= set(out[0])
    assert main(["--corpus", str(one), "--corpus", str(two)]) == 0
    text = capsys.readouterr().out
    assert text.count("automatic merges: precision") == 2
    assert "with top-3 suggestions: recall" in text


def test_recall_counts_confirmed_suggestions() -> None:
    """A right suggestion counts as if a person confirmed it; a wrong one never does."""
    labels = {"category": "GIAO_THONG", "level": "xa", "agency": "A"}
    records = [
        Record(id=i, kind=Kind.KIEN_NGHI, locality="xa-x", text="t", group=g, **labels)
        for i, g in (("a", "G1"), ("b", "G1"), ("c", "G1"), ("d", None), ("e", "G2"), ("f", "G2"))
    ]

    def p(group: str, suggested: tuple[str, ...] = ()) -> Prediction:
        return Prediction(category="GIAO_THONG", level="xa", agency="A", group=group,
                          suggested=suggested)  # fmt: skip

    predictions = {
        "a": p("a"),
        "b": p("a"),  # merged automatically
        "c": p("c", ("d", "a")),  # not merged; a is right, d is not
        "d": p("d"),
        "e": p("e"),
        "f": p("f", ("d",)),  # only a wrong suggestion
    }
    report = score(records=records, predictions=predictions, corpus="", rules_version="v")
    assert report.duplicate_pairs_expected == 4  # a-b, a-c, b-c, e-f
    assert (report.duplicate_pairs_correct, report.duplicate_recall) == (1, 0.25)
    assert report.duplicate_pairs_with_suggestions == 3
    assert report.recall_with_suggestions == 0.75
    assert (report.suggestions_shown, report.suggestions_correct) == (3, 1)
    assert report.records_with_suggestions == 2
    assert report.suggested_pairs == [["a", "c"], ["b", "c"]]
    assert report.duplicate_precision == 1.0  # suggestions never count as merges


def test_bad_corpus_line_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "X"}\n', encoding="utf-8")
    assert main(["--corpus", str(corpus)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_the_running_bus_decides_like_the_functions(classifier: Classifier) -> None:
    """Through ingest → routing (faust) → audit, a sample gets the in-process decisions."""
    from phoihop_testkit.evaluate_bus import evaluate_via_bus

    records = load_corpus(WRITTEN)
    groups: dict[str, list[str]] = {}
    for rec in records:
        if rec.group:
            groups.setdefault(rec.group, []).append(rec.id)
    pair = next(ids for ids in groups.values() if len(ids) >= 2)[:2]
    singles = [r.id for r in records if r.group is None][:4]
    sample = [r for r in records if r.id in {*pair, *singles}]
    in_process = evaluate(records=sample, classifier=classifier)
    via_bus = evaluate_via_bus(records=sample)
    assert via_bus[pair[1]].group == via_bus[pair[0]].group
    for rec in sample:
        assert (via_bus[rec.id].category, via_bus[rec.id].level, via_bus[rec.id].agency) == (
            rec.category,
            rec.level,
            rec.agency,
        ) or rec.id in {m["id"] for m in in_process.misclassified}
    assert in_process.duplicate_recall == 1.0
