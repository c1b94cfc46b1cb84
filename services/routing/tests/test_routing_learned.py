"""The learned second opinion (rules 2026.11.3, dup.2026.11.3, issue 12).

Every text here is written for these tests (not taken from the corpora). The model is
`deploy/config/category_model.json`, fitted by `tools/build_category_model.py`; the
held-out set is never among its examples.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from phoihop_common.config import load_reference
from phoihop_routing.classify import MODEL_AGREES, MODEL_RULE, Classifier
from phoihop_routing.duplicates import CaseSignature, compare, find_duplicate, signature
from phoihop_routing.learned import (
    MODEL_FILE,
    TAKE_MARGIN,
    CategoryModel,
    Guess,
    ModelError,
    chars,
    words,
)
from phoihop_schemas.events import Kind

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))
import build_category_model  # noqa: E402  (a dev tool, not a package)

COMMUNE = "xa-an-binh"
# a market hall's roof and floor, in words no category rule lists
MARKET = (
    "Mái tôn khu hàng cá bị thủng, nền lún, mưa là ngập, người đi mua bán trượt ngã. "
    "Đề nghị sửa lại."
)
# a landslide onto fields: the rules see dredging, weakly; the model agrees
LANDSLIDE = "Lo mo o thon Na Khe bi sat lo sau mua lu, dat da tran xuong ruong"
# nothing the rules or the model can place with confidence
VAGUE = "Nhiều hộ ở thôn Bến Đá chưa được nhận tiền hỗ trợ sau bão, đề nghị kiểm tra"


@pytest.fixture(scope="module")
def rules_only(classifier: Classifier) -> Classifier:
    """The same rules without the model."""
    return Classifier(
        rules=classifier.rules, reference=classifier.reference, normaliser=classifier.normaliser
    )


def test_the_deployment_ships_a_model(classifier: Classifier) -> None:
    assert classifier.model is not None
    assert classifier.model.version.startswith("svm.")
    assert classifier.version == "2026.11.3"


def test_the_model_places_what_no_rule_places(
    classifier: Classifier, rules_only: Classifier
) -> None:
    before = rules_only.classify(text=MARKET, kind=Kind.PHAN_ANH, locality=COMMUNE)
    assert before.category == "KHAC"
    assert before.decision.rule == "unplaced.no_evidence + level.unplaced"
    after = classifier.classify(text=MARKET, kind=Kind.PHAN_ANH, locality=COMMUNE)
    assert after.category == "CONG_THUONG"
    assert after.agency == "SO_CONG_THUONG"
    assert after.decision.rule.startswith(f"{MODEL_RULE} + level.")
    assert after.decision.evidence[0].startswith("model CONG_THUONG (margin ")
    assert after.decision.confidence >= classifier.triage_below


def test_agreement_lifts_a_weak_rule_decision_over_the_triage_bar(
    classifier: Classifier, rules_only: Classifier
) -> None:
    before = rules_only.classify(text=LANDSLIDE, kind=Kind.PHAN_ANH, locality=COMMUNE)
    assert before.decision.confidence < classifier.triage_below
    after = classifier.classify(text=LANDSLIDE, kind=Kind.PHAN_ANH, locality=COMMUNE)
    assert after.category == before.category == "NONG_NGHIEP"
    assert f"+ {MODEL_AGREES} +" in after.decision.rule
    assert after.decision.confidence >= classifier.triage_below
    assert after.decision.confidence > before.decision.confidence


def test_an_unsure_model_changes_nothing(classifier: Classifier, rules_only: Classifier) -> None:
    before = rules_only.classify(text=VAGUE, kind=Kind.PHAN_ANH, locality=COMMUNE)
    after = classifier.classify(text=VAGUE, kind=Kind.PHAN_ANH, locality=COMMUNE)
    assert (after.category, after.agency, after.decision) == (
        before.category,
        before.agency,
        before.decision,
    )


def test_a_confident_rule_decision_never_asks_the_model(classifier: Classifier) -> None:
    c = classifier.classify(
        text="Đường liên thôn Nà Khe xuống cấp, nhiều ổ gà, đề nghị xã sửa chữa",
        kind=Kind.KIEN_NGHI,
        locality=COMMUNE,
    )
    assert c.decision.confidence >= classifier.triage_below
    assert "model" not in c.decision.rule
    assert not any(e.startswith("model ") for e in c.decision.evidence)


def test_guesses_are_deterministic_and_unaccented_text_reads_the_same(
    classifier: Classifier,
) -> None:
    assert classifier.model is not None
    accented = classifier.model.guess(classifier.prepare(MARKET).folded)
    plain = classifier.model.guess(
        classifier.prepare(
            "Mai ton khu hang ca bi thung, nen lun, mua la ngap, nguoi di mua ban truot nga. "
            "De nghi sua lai."
        ).folded
    )
    assert accented == classifier.model.guess(classifier.prepare(MARKET).folded)
    assert plain.category == accented.category == "CONG_THUONG"
    assert Guess("X", TAKE_MARGIN, "Y").sure
    assert not Guess("X", TAKE_MARGIN - 0.01, "Y").sure


def test_a_broken_model_file_is_refused(tmp_path: Path, classifier: Classifier) -> None:
    assert classifier.model is not None
    bad = tmp_path / MODEL_FILE
    bad.write_text('{"format": 1, "classes": ["GIAO_THONG"]}', encoding="utf-8")
    with pytest.raises(ModelError, match="not a category model"):
        CategoryModel.load(bad)
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ModelError):
        CategoryModel.load(bad)
    document = json.loads((ROOT / "deploy" / "config" / MODEL_FILE).read_text())
    document["classes"][0] = "NOT_A_CODE"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelError, match="NOT_A_CODE"):
        Classifier.from_config(reference=load_reference(), model_path=unknown)


def test_a_deployment_without_a_model_classifies_by_rules_alone(tmp_path: Path) -> None:
    c = Classifier.from_config(reference=load_reference(), model_path=tmp_path / "none.json")
    assert c.model is None
    assert c.classify(text=MARKET, kind=Kind.PHAN_ANH, locality=COMMUNE).category == "KHAC"


def test_the_analyzers() -> None:
    assert words("mai ton o cho") == ["mai", "ton", "cho", "mai ton", "ton cho"]
    ab = [" a", "ab", "b ", " ab", "ab ", " ab "]
    cho = [" c", "ch", "ho", "o ", " ch", "cho", "ho ", " cho", "cho ", " cho "]
    assert chars("ab cho") == [*ab, *cho]
    # what scikit-learn's own "char_wb" analyzer gives for folded text
    sklearn_chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    for text in (MARKET, LANDSLIDE, "a bc def ghij klmno"):
        folded = text.lower()
        assert chars(folded) == sklearn_chars(folded)


def test_the_model_is_the_fit_of_the_corpora_and_never_holds_the_held_out_set(
    classifier: Classifier,
) -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_category_model.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    rows = build_category_model.examples(ROOT / "corpus")
    held_out = {
        json.loads(line)["text"]
        for line in (ROOT / "corpus" / "holdout3.jsonl").read_text().splitlines()
    }
    assert len(rows) >= 500
    assert not held_out & {r["text"] for r in rows}
    assert "holdout3" not in build_category_model.TRAINING_SETS
    shipped = json.loads((ROOT / "deploy" / "config" / MODEL_FILE).read_text())
    assert shipped["trained_on"] == {
        s: sum(r["set"] == s for r in rows) for s in shipped["trained_on"]
    }
    assert "holdout3" not in shipped["trained_on"]


def test_the_shipped_numbers_score_as_scikit_learn_scores(classifier: Classifier) -> None:
    rows = build_category_model.examples(ROOT / "corpus")
    rules_only = Classifier(
        rules=classifier.rules, reference=classifier.reference, normaliser=classifier.normaliser
    )
    document, pipeline = build_category_model.build(rows, rules_only)
    model = CategoryModel(document)
    for text in (MARKET, LANDSLIDE, VAGUE, "", "!!!", "ĐT.749 sạt lở", rows[7]["text"]):
        folded = classifier.prepare(text).folded
        ours = model.decision_values(folded)
        theirs = pipeline.decision_function([folded])[0]
        assert model.classes == [str(c) for c in pipeline.classes_]
        # coefficients are shipped as float16: agreement to about 1e-3 of a unit
        assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 0.01
        assert model.guess(folded).category == pipeline.predict([folded])[0]


def test_a_complaint_merges_with_a_report_only_when_nearly_the_same(
    classifier: Classifier,
) -> None:
    def sig(rid: str, text: str, kind: Kind) -> CaseSignature:
        c = classifier.classify(text=text, kind=kind, locality="phuong-bac-son")
        return signature(
            recommendation_id=rid, text=text, locality="phuong-bac-son", classification=c
        )

    wall = sig(
        "r1",
        "Tường rào phía sau Trường THPT Hồng Lĩnh đổ từ tháng 3, sân trường ngập khi mưa, "
        "đề nghị Sở GD&ĐT sớm xây lại",
        Kind.PHAN_ANH,
    )
    levy = sig(
        "r2",
        "Tôi khiếu nại việc Trường THPT Hồng Lĩnh thu mỗi học sinh 900.000 đồng tiền lắp "
        "máy chiếu mà không họp cha mẹ học sinh, đề nghị hoàn trả khoản thu sai quy định",
        Kind.KHIEU_NAI,
    )
    result = compare(levy, wall)
    assert "complaint vs phan_anh" in result.evidence
    assert find_duplicate(candidate=levy, open_cases=[wall]) is None
    again = sig(
        "r3",
        "Khiếu nại: Trường THPT Hồng Lĩnh thu mỗi học sinh 900.000 đồng tiền lắp máy chiếu "
        "không họp cha mẹ học sinh, đề nghị hoàn trả khoản thu sai quy định",
        Kind.TIEP_CONG_DAN,
    )
    peer = compare(levy, again)
    assert not any(e.startswith("complaint vs") for e in peer.evidence)
    found = find_duplicate(candidate=again, open_cases=[levy])
    assert found is not None
    assert found[0].recommendation_id == "r2"
