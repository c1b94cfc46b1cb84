"""Duplicate detection: paraphrases merge, near misses (another object) never do.

Every text here is written for these tests (not taken from the corpora).
"""

from __future__ import annotations

import json

import pytest

from phoihop_routing.classify import Classification, Classifier
from phoihop_routing.duplicates import (
    NATIONAL_BUCKET,
    CaseSignature,
    DenunciationMergeError,
    DuplicateIndex,
    bucket_key,
    compare,
    find_duplicate,
    merge_decision,
    signature,
)
from phoihop_schemas.events import Decision, Kind, Level


def sig(
    classifier: Classifier,
    rid: str,
    text: str,
    locality: str = "xa-tan-phu",
    kind: Kind = Kind.KIEN_NGHI,
) -> CaseSignature:
    c = classifier.classify(text=text, kind=kind, locality=locality)
    return signature(recommendation_id=rid, text=text, locality=locality, classification=c)


def same_bucket(a: CaseSignature, b: CaseSignature) -> bool:
    return a.bucket == b.bucket


# (open case, new recommendation): same concern about the same object
DUPLICATES = [
    pytest.param(
        "Cử tri xóm 2 đề nghị xã đổ bê tông tuyến đường liên xóm 2 – xóm 5, mặt đường đất "
        "lầy lội, mùa mưa xe máy không đi được.",
        "Duong lien xom 2 sang xom 5 van la duong dat, mua mua lay loi qua, de nghi xa som "
        "be tong hoa.",
        id="inter-hamlet road, no diacritics",
    ),
    pytest.param(
        "Cử tri phản ánh cầu Bến Mơ trên ĐT.615 bị sạt mố, lan can cầu gãy, đề nghị tỉnh sửa "
        "chữa gấp.",
        "Tiếp tục kiến nghị sửa chữa cầu Bến Mơ trên đường tỉnh 615; mố cầu sạt lở ngày càng "
        "nặng, xe qua cầu rất nguy hiểm.",
        id="provincial bridge, follow-up with another road spelling",
    ),
    pytest.param(
        "Người dân phản ánh Trường THPT Hồng Lĩnh thiếu phòng học, học sinh phải học ca ba.",
        "Phụ huynh đề nghị tỉnh xây thêm phòng học cho Trường THPT Hồng Lĩnh vì phòng học "
        "không đủ, các em phải học cả buổi tối.",
        id="school, different wording",
    ),
    pytest.param(
        "Cơ sở ép dầu Tân Sinh xả khói đen và mùi khét ra khu dân cư, nhiều người bị ho.",
        "Tôi tố cáo cơ sở ép dầu Tân Sinh xả khói đen, mùi khét nồng nặc suốt đêm gây ô nhiễm "
        "không khí.",
        id="polluting workshop, meeting vs denunciation",
    ),
    pytest.param(
        "Cử tri thôn Nà Cọ đề nghị làm lại đường nối thôn Nà Cọ với thôn Khuổi Mường, mặt đường "
        "đá hộc lởm chởm.",
        "Duong tu Na Co sang Khuoi Muong da hoc lom chom, xe may di rat kho, de nghi xa lam lai.",
        id="hamlets named without 'thôn' in the web form",
    ),
    pytest.param(
        "Cử tri thôn Pác Bó đề nghị lắp đèn chiếu sáng trên trục đường chính của thôn.",
        "Trục đường thôn Pác Bó tối om, không có bóng điện nào, mong xã cho lắp đèn đường.",
        id="street lights of one hamlet, other words",
    ),
    pytest.param(
        "Chợ Cầu Trắng có nhiều ki-ốt bỏ trống nhưng ban quản lý chợ không cho người khác thuê.",
        "Cho Cau Trang ki ot bo trong ca nam, tieu thuong xin thue khong duoc, de nghi xa xem lai.",
        id="market, no diacritics",
    ),
]

# (open case, new recommendation): same kind of problem, another object -> never merged
NEAR_MISSES = [
    pytest.param(
        "Cử tri đề nghị sửa chữa đường liên thôn 7 – thôn 8, mặt đường vỡ nát, đi lại khó khăn.",
        "Cử tri đề nghị sửa chữa đường liên thôn 9 – thôn 10, mặt đường vỡ nát, đi lại khó khăn.",
        id="another hamlet pair",
    ),
    pytest.param(
        "Cầu Bến Mơ trên ĐT.615 xuống cấp, lan can gãy, đề nghị tỉnh sửa chữa cầu.",
        "Cầu Bến Mơ trên ĐT.618 xuống cấp, lan can gãy, đề nghị tỉnh sửa chữa cầu.",
        id="another provincial road number",
    ),
    pytest.param(
        "Trường THPT Hồng Lĩnh thiếu phòng học, học sinh phải học ca ba.",
        "Trường THPT Trần Phú thiếu phòng học, học sinh phải học ca ba.",
        id="another school",
    ),
    pytest.param(
        "Chợ Cầu Trắng có nhiều ki-ốt bỏ trống, đề nghị xã thu hồi giao cho tiểu thương.",
        "Chợ Gò Mây có nhiều ki-ốt bỏ trống, đề nghị xã thu hồi giao cho tiểu thương.",
        id="another market",
    ),
    pytest.param(
        "Cử tri đề nghị kiểm tra Trường THPT Hồng Lĩnh thiếu phòng học.",
        "Cử tri đề nghị kiểm tra cho Trường THPT Trần Phú thiếu phòng học.",
        id="another school, 'cho' before the name",
    ),
    pytest.param(
        "Đề nghị kiểm tra quầy thuốc Hồng Ân ở thôn Bản Chang bán thuốc quá hạn.",
        "Đề nghị kiểm tra phòng khám Hồng Phúc ở thôn Bản Chang hành nghề không phép.",
        id="another health facility in the same hamlet",
    ),
    pytest.param(
        "Đề nghị mở rộng Quốc lộ 2C đoạn qua trung tâm xã, lòng đường quá hẹp.",
        "Đề nghị mở rộng Quốc lộ 279 đoạn qua trung tâm xã, lòng đường quá hẹp.",
        id="another national road",
    ),
    pytest.param(
        "Dự án Khu dân cư Đồi Thông thu hồi đất nhưng chưa bố trí tái định cư cho các hộ.",
        "Dự án Cụm công nghiệp Bãi Bằng thu hồi đất nhưng chưa bố trí tái định cư cho các hộ.",
        id="another project",
    ),
]


@pytest.mark.parametrize(("first", "second"), DUPLICATES)
def test_paraphrases_of_one_concern_are_merged(
    classifier: Classifier, first: str, second: str
) -> None:
    case = sig(classifier, "case", first)
    new = sig(classifier, "new", second)
    assert same_bucket(case, new)
    found = find_duplicate(candidate=new, open_cases=[case])
    assert found is not None, compare(new, case)
    assert found[0].recommendation_id == "case"
    assert 0.0 < found[1] <= 1.0


@pytest.mark.parametrize(("first", "second"), NEAR_MISSES)
def test_near_misses_are_not_merged(classifier: Classifier, first: str, second: str) -> None:
    case = sig(classifier, "case", first)
    new = sig(classifier, "new", second)
    assert find_duplicate(candidate=new, open_cases=[case]) is None
    assert compare(new, case).vetoed


def test_same_text_in_another_commune_is_not_merged(classifier: Classifier) -> None:
    text = "Bãi rác tự phát cạnh cầu máng thôn 4 bốc mùi, đề nghị xã dọn dẹp."
    a = sig(classifier, "a", text, locality="xa-tan-phu")
    b = sig(classifier, "b", text, locality="xa-hoa-lac")
    assert not same_bucket(a, b)
    assert find_duplicate(candidate=b, open_cases=[a]) is None  # even if compared


def test_national_rule_concern_meets_across_communes(classifier: Classifier) -> None:
    a = sig(
        classifier,
        "a",
        "Cử tri đề nghị Quốc hội sửa Luật Thuế thu nhập cá nhân, nâng mức giảm trừ gia cảnh "
        "cho phù hợp giá cả hiện nay.",
        locality="xa-dong-tien",
    )
    b = sig(
        classifier,
        "b",
        "Nguoi lao dong mong Quoc hoi som sua luat thue thu nhap ca nhan, tang muc giam tru "
        "gia canh vi muc hien nay qua thap.",
        locality="phuong-song-cong",
    )
    assert a.bucket == b.bucket == NATIONAL_BUCKET
    found = find_duplicate(candidate=b, open_cases=[a])
    assert found is not None
    assert found[0].recommendation_id == "a"


def test_national_road_stays_in_its_commune_bucket(classifier: Classifier) -> None:
    a = sig(classifier, "a", "Đề nghị lắp đèn tín hiệu tại ngã tư Quốc lộ 2C.", "xa-na-hang")
    assert a.level == Level.TRUNG_UONG.value
    assert a.bucket == "local:xa-na-hang"


def test_bucket_does_not_depend_on_category_or_commune_level() -> None:
    decision = Decision(rule="r", version="v")
    keys = {
        bucket_key(
            locality="xa-an-binh",
            classification=Classification(
                category=category, level=level, agency="X", decision=decision
            ),
        )
        for category in ("GIAO_THONG", "XAY_DUNG_QUY_HOACH", "KHAC")
        for level in (Level.XA, Level.TINH, Level.TRUNG_UONG)
    }
    assert keys == {"local:xa-an-binh"}


def test_find_duplicate_prefers_the_closest_case_and_skips_itself(classifier: Classifier) -> None:
    road = sig(classifier, "road", "Đường liên xóm 2 – xóm 5 lầy lội, đề nghị xã bê tông hóa.")
    light = sig(classifier, "light", "Đề nghị xã lắp đèn chiếu sáng đường liên xóm 2 – xóm 5.")
    new = sig(classifier, "new", "Xin xã bê tông hóa con đường đất lầy lội nối xóm 2 với xóm 5.")
    found = find_duplicate(candidate=new, open_cases=[light, road, new])
    assert found is not None
    assert found[0].recommendation_id == "road"


def test_signature_round_trips_through_json(classifier: Classifier) -> None:
    s = sig(classifier, "r1", "Cầu Bến Mơ trên ĐT.615 bị sạt mố, đề nghị tỉnh sửa chữa.")
    assert "road:dt615" in s.identifiers
    assert "bridge:ben mo" in s.identifiers
    data = json.loads(json.dumps(s.to_dict()))
    assert CaseSignature.from_dict(data) == s


def test_merge_decision_is_explainable(classifier: Classifier) -> None:
    case = sig(classifier, "case", "Cầu Bến Mơ trên ĐT.615 bị sạt mố, đề nghị tỉnh sửa chữa.")
    new = sig(classifier, "new", "Cau Ben Mo tren duong tinh 615 sat mo cau, xin sua gap.")
    d = merge_decision(candidate=new, case=case)
    assert d.evidence[0] == "duplicate of case"
    assert any("bridge:ben mo" in e for e in d.evidence)
    assert 0.0 < d.confidence <= 1.0


QUARRY = (
    "Tôi tố cáo doanh nghiệp khai thác mỏ đá Khe Sim nổ mìn ngoài giờ cho phép, khai thác "
    "lấn sang rừng sản xuất của thôn Bình Minh."
)
QUARRY_COPY = (
    "Toi to cao doanh nghiep khai thac mo da Khe Sim no min ngoai gio cho phep, khai thac "
    "lan sang rung san xuat cua thon Binh Minh."
)


@pytest.mark.parametrize("other", [k for k in Kind if k is not Kind.TO_CAO])
def test_denunciation_never_merges_with_another_kind(classifier: Classifier, other: Kind) -> None:
    """The merge side door: an identical text of another kind never joins a to_cao (or back)."""
    denunciation = sig(classifier, "tc", QUARRY, kind=Kind.TO_CAO)
    copy = sig(classifier, "copy", QUARRY, kind=other)
    assert same_bucket(denunciation, copy)
    for candidate, case in ((copy, denunciation), (denunciation, copy)):
        assert find_duplicate(candidate=candidate, open_cases=[case]) is None
        assert DuplicateIndex([case]).find(candidate=candidate) is None
        result = compare(candidate, case)
        assert result.vetoed
        assert result.evidence[0].startswith("denunciation never merges")
        with pytest.raises(DenunciationMergeError):
            merge_decision(candidate=candidate, case=case)


def test_denunciations_of_other_communes_never_merge(classifier: Classifier) -> None:
    a = sig(classifier, "a", QUARRY, locality="xa-tan-phu", kind=Kind.TO_CAO)
    b = sig(classifier, "b", QUARRY, locality="xa-hoa-lac", kind=Kind.TO_CAO)
    assert not same_bucket(a, b)
    assert find_duplicate(candidate=b, open_cases=[a]) is None  # even if compared
    assert compare(b, a).evidence == ("denunciations of different communes",)


def test_near_identical_denunciations_of_one_commune_merge(classifier: Classifier) -> None:
    a = sig(classifier, "a", QUARRY, kind=Kind.TO_CAO)
    b = sig(classifier, "b", QUARRY_COPY, kind=Kind.TO_CAO)
    assert same_bucket(a, b)
    found = find_duplicate(candidate=b, open_cases=[a])
    assert found is not None
    assert found[0].recommendation_id == "a"
    assert DuplicateIndex([a]).find(candidate=b) == found
    assert merge_decision(candidate=b, case=a).evidence[0] == "duplicate of a"


def test_denunciation_of_a_national_rule_stays_in_its_commune(classifier: Classifier) -> None:
    text = (
        "Tôi tố cáo cán bộ xã thu sai quy định khi làm thủ tục rút bảo hiểm xã hội một lần, "
        "đề nghị Quốc hội sửa Luật Bảo hiểm xã hội."
    )
    meeting = sig(classifier, "m", text, locality="xa-dong-tien")
    denunciation = sig(classifier, "tc", text, locality="xa-dong-tien", kind=Kind.TO_CAO)
    assert meeting.bucket == NATIONAL_BUCKET  # the same words from a meeting are national
    assert denunciation.bucket == "local:xa-dong-tien"
    assert denunciation.kind == Kind.TO_CAO.value


def test_older_signature_without_kind_takes_no_merge(classifier: Classifier) -> None:
    """An open case signed before kinds were recorded may be a denunciation: no merge into it."""
    current = sig(classifier, "old", QUARRY, kind=Kind.TO_CAO)
    legacy = CaseSignature.from_dict({**current.to_dict(), "kind": "", "version": "dup.old"})
    copy = sig(classifier, "copy", QUARRY, kind=Kind.PHAN_ANH)
    assert find_duplicate(candidate=copy, open_cases=[legacy]) is None
    assert find_duplicate(candidate=copy, open_cases=[current]) is None


def test_evaluation_withholds_labelled_pairs_the_rule_forbids(classifier: Classifier) -> None:
    """A corpus group joining a to_cao with a meeting item is not a missed pair."""
    from phoihop_routing.evaluate import Record, evaluate

    labels = {"category": "MOI_TRUONG", "level": "tinh", "agency": "SO_NN_MT", "group": "G1"}
    records = [
        Record(id="M1", kind=Kind.KIEN_NGHI, locality="xa-tan-phu", text=QUARRY, **labels),
        Record(id="T1", kind=Kind.TO_CAO, locality="xa-tan-phu", text=QUARRY_COPY, **labels),
        Record(id="T2", kind=Kind.TO_CAO, locality="xa-tan-phu", text=QUARRY, **labels),
    ]
    report = evaluate(records=records, classifier=classifier)
    assert report.withheld_pairs == [["M1", "T1"], ["M1", "T2"]]
    assert report.duplicate_pairs_expected == 1  # T1-T2
    assert (report.duplicate_precision, report.duplicate_recall) == (1.0, 1.0)
