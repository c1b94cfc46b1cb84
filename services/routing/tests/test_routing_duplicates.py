"""Duplicate detection: paraphrases merge, near misses (another object) never do.

Every text here is written for these tests (not taken from the corpora).
"""

from __future__ import annotations

import json

import pytest

from phoihop_common.config import load_reference
from phoihop_routing.classify import Classification, Classifier
from phoihop_routing.duplicates import (
    NATIONAL_BUCKET,
    CaseSignature,
    bucket_key,
    compare,
    find_duplicate,
    merge_decision,
    signature,
)
from phoihop_schemas.events import Decision, Kind, Level


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_config(reference=load_reference())


def sig(classifier: Classifier, rid: str, text: str, locality: str = "xa-tan-phu") -> CaseSignature:
    c = classifier.classify(text=text, kind=Kind.KIEN_NGHI, locality=locality)
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
