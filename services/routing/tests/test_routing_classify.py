"""Classification by data rules: folded matching, level precedence, agency, explanations.

Every text here is written for these tests (not taken from the corpora).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phoihop_common.config import default_config_dir, load_reference
from phoihop_routing.classify import Classifier
from phoihop_routing.rules import RulesError, load_rules
from phoihop_schemas.events import Kind, Level


def classify(classifier: Classifier, text: str, locality: str = "xa-hoa-lac"):  # type: ignore[no-untyped-def]
    return classifier.classify(text=text, kind=Kind.KIEN_NGHI, locality=locality)


def test_matching_ignores_diacritics(classifier: Classifier) -> None:
    with_marks = classify(classifier, "Đề nghị xã bê tông hóa đường liên xóm Gò Cao – Bãi Sậy.")
    without = classify(classifier, "De nghi xa be tong hoa duong lien xom Go Cao - Bai Say.")
    assert (with_marks.category, with_marks.level) == ("GIAO_THONG", Level.XA)
    assert (without.category, without.level) == (with_marks.category, with_marks.level)
    assert without.decision.rule == with_marks.decision.rule


@pytest.mark.parametrize(
    ("text", "category", "level"),
    [
        # with diacritics, look-alike folded words are told apart: "đề nghị đình chỉ" is not a
        # "nghị định", "đường sát nhà" not a "đường sắt", "cống chung" not "công chứng",
        # "đại diện" not "điện"
        (
            "Đề nghị đình chỉ xưởng sơn Hòa Bình xả khói đen, mùi khét vào khu dân cư.",
            "MOI_TRUONG",
            Level.TINH,
        ),
        (
            "Quán hát ở ngay Thiên Đường sát nhà tôi mở loa hò hét đến nửa đêm, đề nghị phường "
            "xử lý.",
            "AN_NINH_TRAT_TU",
            Level.XA,
        ),
        (
            "Ông Lý, đại diện 20 hộ, trình bày tiền đền bù đất ruộng bị thu hồi chưa được trả.",
            "DAT_DAI",
            Level.TINH,
        ),
        # old and new tone placement are the same word
        ("Đề nghị xã tổ chức hoà giải vụ hộ liền kề xây tường lấn vườn.", "DAT_DAI", Level.XA),
        # money asked for another object is a means: the object decides the field
        (
            "Đề nghị xã bố trí kinh phí đổ bê tông đường trục thôn Nà Cọ.",
            "GIAO_THONG",
            Level.XA,
        ),
        # a national rule wins over the subject: certificates are provincial, their rules not
        (
            "Đề nghị Chính phủ sửa đổi nghị định về cấp giấy chứng nhận quyền sử dụng đất cho "
            "đất khai hoang.",
            "DAT_DAI",
            Level.TRUNG_UONG,
        ),
        (
            "Gia đình tôi nộp hồ sơ cấp giấy chứng nhận quyền sử dụng đất 5 tháng chưa có kết quả.",
            "DAT_DAI",
            Level.TINH,
        ),
        # a national highway wins over commune-level signals (an alley joining it)
        (
            "Đoạn Quốc lộ 2C giao với ngõ 8 thường xảy ra tai nạn, đề nghị lắp gờ giảm tốc.",
            "GIAO_THONG",
            Level.TRUNG_UONG,
        ),
        ("Cầu treo Nậm Pạt trên ĐT.177 bị võng, đề nghị tỉnh sửa.", "GIAO_THONG", Level.TINH),
        # household dispute -> commune mediation; compensation -> province
        (
            "Hai hộ tranh chấp ranh giới đất vườn, đề nghị xã tổ chức hòa giải.",
            "DAT_DAI",
            Level.XA,
        ),
        (
            "Đơn giá bồi thường khi thu hồi đất làm đường cao thấp hơn giá thị trường.",
            "DAT_DAI",
            Level.TINH,
        ),
        ("Đề nghị xã thay bóng đèn chiếu sáng ở cuối xóm.", "XAY_DUNG_QUY_HOACH", Level.XA),
        ("Nhà lồng chợ xã dột nát, tiểu thương phải che bạt.", "CONG_THUONG", Level.XA),
        (
            "Cửa hàng tạp hóa đầu xóm bán dầu ăn giả nhãn hiệu, không rõ xuất xứ.",
            "CONG_THUONG",
            Level.TINH,
        ),
        ("Nhóm thanh niên tụ tập rú ga, chửi nhau lúc nửa đêm.", "AN_NINH_TRAT_TU", Level.XA),
        ("Tình trạng cho vay nặng lãi, tín dụng đen tràn lan.", "AN_NINH_TRAT_TU", Level.TINH),
        ("Xin hướng dẫn đăng ký khai tử cho bố tôi mất ở bệnh viện.", "TU_PHAP", Level.XA),
        ("Thẻ BHYT của con tôi bị in sai tên, đề nghị cấp lại.", "BAO_HIEM", Level.TINH),
    ],
)
def test_level_precedence_and_category(
    classifier: Classifier, text: str, category: str, level: Level
) -> None:
    c = classify(classifier, text)
    assert (c.category, c.level) == (category, level), c.decision.evidence


@pytest.mark.parametrize(
    ("text", "locality", "agency"),
    [
        ("Đề nghị phường sửa mặt ngõ 14 bị lún sụt.", "phuong-bac-son", "UBND_XA_PHUONG_BAC_SON"),
        (
            "Rác thải sinh hoạt đổ bừa ven đường trong khu, đề nghị đặc khu thu gom.",
            "dac-khu-dao-ngoc",
            "UBND_XA_DAC_KHU_DAO_NGOC",
        ),
        ("Trạm biến áp quá tải, điện yếu cả tháng nay.", "xa-an-binh", "CONG_TY_DIEN_LUC"),
        ("Trường THPT thiếu giáo viên dạy Tin học.", "xa-an-binh", "SO_GD_DT"),
        ("Đề nghị Bộ Y tế tăng lương cho nhân viên y tế cơ sở.", "xa-an-binh", "DOAN_DBQH"),
        ("Chúng tôi xin trân trọng cảm ơn các vị đại biểu.", "xa-an-binh", "TT_HDND"),
        ("Mong các cấp quan tâm.", "xa-an-binh", "TT_HDND"),
    ],
)
def test_agency_follows_level_and_category(
    classifier: Classifier, text: str, locality: str, agency: str
) -> None:
    assert classify(classifier, text, locality).agency == agency


def test_agency_for(classifier: Classifier) -> None:
    af = classifier.agency_for
    assert af(category="GIAO_THONG", level=Level.XA, locality="xa-an-binh") == "UBND_XA_XA_AN_BINH"
    assert af(category="DAT_DAI", level=Level.TINH, locality="xa-an-binh") == "SO_NN_MT"
    assert af(category="DAT_DAI", level=Level.TRUNG_UONG, locality="xa-an-binh") == "DOAN_DBQH"
    assert af(category="KHAC", level=Level.XA, locality="xa-an-binh") == "TT_HDND"
    # a commune the reference does not know has no committee: triage decides
    assert af(category="GIAO_THONG", level=Level.XA, locality="xa-khong-co") == "TT_HDND"


def test_kind_never_changes_the_decision(classifier: Classifier) -> None:
    text = "Cơ sở giết mổ gia súc xả nước thải ra kênh tưới, đề nghị kiểm tra."
    results = {
        (c.category, c.level, c.agency)
        for c in (classifier.classify(text=text, kind=k, locality="xa-an-binh") for k in Kind)
    }
    assert len(results) == 1


def test_decision_is_explainable(classifier: Classifier) -> None:
    c = classify(classifier, "Duong lien thon 2 - thon 6 o ga chi chit, de nghi xa sua.")
    d = c.decision
    assert (
        d.version
        == classifier.version
        == load_rules(default_config_dir() / "routing_rules.yaml").version
    )
    assert d.rule.startswith("gt.local_road")
    assert any("duong lien thon" in e for e in d.evidence)
    assert any(e.startswith("level xa") for e in d.evidence)
    assert 0.5 <= d.confidence <= 1.0
    assert "gt.local_road" in c.concepts


def test_weak_evidence_has_low_confidence(classifier: Classifier) -> None:
    vague = classify(classifier, "Đề nghị xem xét lại việc này cho dân.")
    assert vague.category == "KHAC"
    assert vague.agency == "TT_HDND"
    clear = classify(classifier, "Mất điện liên tục, trạm biến áp quá tải, dây điện võng thấp.")
    assert clear.decision.confidence > classifier.triage_below
    # two fields that go to two different bodies (power company, water works)
    mixed = classify(
        classifier, "Mất điện và mất nước sinh hoạt liên tục cả tuần, đề nghị kiểm tra."
    )
    assert mixed.decision.confidence < clear.decision.confidence
    # the confidence is about the body: waste in a market is the commune's either way, and
    # "ở chợ", "trong chợ" only say where the waste is
    local = classify(classifier, "Rác thải ở chợ làm ô nhiễm, đề nghị thu gom rác trong chợ.")
    assert (local.category, local.level) == ("MOI_TRUONG", Level.XA)
    assert local.decision.confidence > classifier.triage_below


def test_rules_are_data(tmp_path: Path, classifier: Classifier) -> None:
    source = default_config_dir() / "routing_rules.yaml"
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["version"] = "test.1"
    doc["categories"].append(
        {"id": "vh.pagoda_bells", "category": "VAN_HOA_THE_THAO", "weight": 9, "terms": ["chuông"]}
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    custom = Classifier.from_config(reference=load_reference(), rules_path=path)
    c = custom.classify(text="Tiếng chuông ồn ào", kind=Kind.PHAN_ANH, locality="xa-an-binh")
    assert (c.category, c.decision.version) == ("VAN_HOA_THE_THAO", "test.1")


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "routing_rules.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


MINIMAL = {
    "version": "t1",
    "levels": [{"id": "tw.a", "level": "trung_uong", "terms": ["quốc hội"]}],
    "categories": [{"id": "gt.a", "category": "GIAO_THONG", "terms": ["đường"]}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("version"), "version: Field required"),
        (
            lambda d: d["categories"][0].update(weight=-1),
            "categories[0] (id gt.a).weight: Input should be greater than 0",
        ),
        (lambda d: d["categories"][0].update(patterns=["(unclosed"]), "invalid regular expression"),
        (lambda d: d["categories"][0].update(terms=[]), "rule 'gt.a' has no terms"),
        (lambda d: d["categories"].append(dict(d["categories"][0])), "duplicate rule id 'gt.a'"),
        (lambda d: d["levels"][0].pop("level"), "level rule 'tw.a' needs a level"),
        (lambda d: d["categories"][0].update(colour="red"), "colour: Extra inputs"),
    ],
)
def test_invalid_rules_are_refused_clearly(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(yaml.safe_dump(MINIMAL))
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_category_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(MINIMAL))
    doc["categories"][0]["category"] = "GIAO_THONGG"
    with pytest.raises(RulesError, match="unknown category 'GIAO_THONGG'"):
        Classifier.from_config(reference=load_reference(), rules_path=_write(tmp_path, doc))


def test_missing_rules_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="missing config file"):
        load_rules(tmp_path / "nope.yaml")
