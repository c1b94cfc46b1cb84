"""`make eval --pairs`: the matcher scored on pairs people decided (audit's JSONL export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoihop_routing.classify import Classifier
from phoihop_routing.evaluate import main
from phoihop_routing.evaluate_pairs import (
    LabelledPair,
    PairsError,
    evaluate_pairs,
    load_pairs,
    verdict,
)
from phoihop_schemas.events import Kind

ROAD = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp nghiêm trọng"
ROAD_INFORMAL = "duong lien thon 3 - thon 4 xuong cap nghiem trong, de nghi sua chua som"
HOSPITAL = "Đề nghị tăng cường bác sĩ cho trạm y tế xã, người dân phải chờ khám rất lâu"


def _pair(a: str, b: str, label: str, text_a: str, text_b: str, **kw: str) -> dict[str, str]:
    return {
        "a": a,
        "b": b,
        "label": label,
        "action": "merge_into" if label == "duplicate" else "not_duplicate",
        "text_a": text_a,
        "text_b": text_b,
        "kind_a": kw.get("kind_a", "kien_nghi"),
        "kind_b": kw.get("kind_b", "kien_nghi"),
        "locality_a": kw.get("locality_a", "xa-an-binh"),
        "locality_b": "xa-an-binh",
    }


def test_verdicts_and_figures(classifier: Classifier, tmp_path: Path) -> None:
    rows = [
        _pair("a1", "b1", "duplicate", ROAD, ROAD),
        _pair("a2", "b2", "duplicate", ROAD_INFORMAL, ROAD),
        _pair("a3", "b3", "not_duplicate", ROAD, ROAD, locality_a="phuong-bac-son"),
        _pair("a5", "b5", "not_duplicate", HOSPITAL, ROAD),
        _pair("a4", "b4", "not_duplicate", ROAD, ROAD, kind_a="to_cao", kind_b="khieu_nai"),
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    pairs = load_pairs(path)
    assert [p.label for p in pairs] == ["duplicate", "duplicate"] + ["not_duplicate"] * 3
    assert verdict(pairs[0], classifier=classifier) == "merge"  # the very same words
    assert verdict(pairs[2], classifier=classifier) == "apart"  # a local road, other commune
    assert verdict(pairs[3], classifier=classifier) in ("none", "apart")  # health vs roads
    assert verdict(pairs[4], classifier=classifier) == "none"  # a to_cao never pairs otherwise
    report = evaluate_pairs(pairs=pairs, classifier=classifier, source=str(path))
    assert (report.pairs, report.duplicates, report.not_duplicates) == (5, 2, 3)
    assert sum(sum(c.values()) for c in report.verdicts.values()) == 5
    assert report.merge_precision == 1.0
    assert report.merge_recall is not None
    assert report.merge_recall >= 0.5
    assert report.wrong_merges == []


def test_command_line_json_and_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(_pair("a", "b", "duplicate", ROAD, ROAD), ensure_ascii=False))
    assert main(["--pairs", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pairs"] == 1
    assert doc["verdicts"] == {"duplicate": {"merge": 1}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"a": "x", "b": "y", "label": "maybe"}))
    with pytest.raises(PairsError):
        load_pairs(bad)
    assert main(["--pairs", str(bad)]) == 2
    assert main(["--pairs", str(tmp_path / "missing.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_pair_model_is_what_audit_exports() -> None:
    fields = set(LabelledPair.__dataclass_fields__)
    assert fields == {
        "a",
        "b",
        "label",
        "text_a",
        "text_b",
        "kind_a",
        "kind_b",
        "locality_a",
        "locality_b",
    }
    assert Kind("to_cao") is Kind.TO_CAO


def test_the_testkit_entry_point_shares_the_evaluator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from phoihop_testkit.evaluate_bus import main as bus_main

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(_pair("a", "b", "duplicate", ROAD, ROAD), ensure_ascii=False))
    assert bus_main(["--pairs", str(path), "--json"]) == 0  # pairs: scored in process
    assert json.loads(capsys.readouterr().out)["pairs"] == 1
    assert main(["--via-bus"]) == 2  # routing itself never starts the bus
    assert "phoihop_testkit.evaluate_bus" in capsys.readouterr().err
