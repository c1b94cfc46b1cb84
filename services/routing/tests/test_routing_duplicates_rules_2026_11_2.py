"""Duplicates under dup.2026.11.2 (issue 12, after the held-out evaluation).

Every text here is written for these tests (not taken from the corpora): a firm's line of
business is not its name, a name cut short is the same name, two sections of one long
road, and a pair classified apart in both field and level.
"""

from __future__ import annotations

from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    MERGE,
    SUGGEST_VERDICT,
    VERSION,
    CaseSignature,
    compare,
    find_duplicate,
    rank_candidates,
    signature,
)
from phoihop_routing.duplicates.similarity import _contained
from phoihop_schemas.events import Kind


def sig(
    classifier: Classifier,
    rid: str,
    text: str,
    locality: str = "phuong-song-cong",
    kind: Kind = Kind.PHAN_ANH,
) -> CaseSignature:
    c = classifier.classify(text=text, kind=kind, locality=locality)
    return signature(recommendation_id=rid, text=text, locality=locality, classification=c)


def test_version() -> None:
    assert VERSION == "dup.2026.11.3"


def test_a_firms_line_of_business_is_not_its_name(classifier: Classifier) -> None:
    # two packaging firms of one phường: "Bao bì" is shared, the names are not
    a = sig(
        classifier,
        "a",
        "Công nhân Công ty TNHH Bao bì Minh Khang phản ánh công ty trừ tiền BHXH hằng tháng "
        "nhưng không đóng cho cơ quan bảo hiểm. Đề nghị BHXH tỉnh kiểm tra.",
    )
    b = sig(
        classifier,
        "b",
        "Công ty TNHH Bao bì Đại Lộc nợ BHXH của người lao động nhiều tháng, nghỉ việc không "
        "chốt được sổ. Đề nghị BHXH tỉnh đôn đốc công ty nộp tiền.",
    )
    assert "facility:minh khang" in a.identifiers
    assert not any(i.startswith("facility:bao") for i in (*a.identifiers, *b.identifiers))
    result = compare(b, a)
    assert result.vetoed
    assert any("different facility" in e for e in result.evidence)


def test_name_containment() -> None:
    assert _contained("phu van", "phu van ha")
    assert _contained("hung vuong", "go hung vuong")
    assert not _contained("phu van", "van phu")
    assert not _contained("2", "dong 2")  # a number is never a name cut short


def test_a_name_cut_short_is_the_same_object(classifier: Classifier) -> None:
    first = sig(
        classifier,
        "m1",
        "Cử tri đề nghị xã lợp lại mái khu bán rau chợ Phù Vân Hạ bị lốc làm tốc, tiểu "
        "thương phải che bạt tạm.",
        locality="xa-dong-tien",
        kind=Kind.KIEN_NGHI,
    )
    second = sig(
        classifier,
        "m2",
        "Mái khu bán rau chợ Phù Vân bị lốc làm tốc từ tháng trước, tiểu thương vẫn che bạt, "
        "đề nghị xã lợp lại.",
        locality="xa-dong-tien",
    )
    result = compare(second, first)
    assert not result.vetoed
    assert find_duplicate(candidate=second, open_cases=[first]) is not None


ROAD_DRAIN = (
    "Cử tri thôn Khe Lim kiến nghị tỉnh xây rãnh thoát nước cho đoạn ĐT.741 qua thôn, mưa "
    "xuống nước tràn mặt đường, lề bị xói sâu."
)
ROAD_DRAIN_AGAIN = (
    "Đoạn DT741 qua thôn Khe Lim mưa là nước tràn mặt đường, lề xói thành hố. Đề nghị tỉnh "
    "làm rãnh thoát nước."
)
ROAD_SCHOOL = (
    "ĐT741 trước cổng trường mầm non Hoa Sen xe tải chạy rất nhanh, không có biển báo. Đề "
    "nghị tỉnh làm gờ giảm tốc."
)


def test_two_sections_of_one_provincial_road_are_not_merged(classifier: Classifier) -> None:
    drain = sig(classifier, "r1", ROAD_DRAIN, locality="xa-an-binh", kind=Kind.KIEN_NGHI)
    school = sig(classifier, "r2", ROAD_SCHOOL, locality="xa-an-binh")
    result = compare(school, drain)
    assert any(e.startswith("other section of road:dt741") for e in result.evidence)
    assert find_duplicate(candidate=school, open_cases=[drain]) is None


def test_one_section_named_by_both_still_merges(classifier: Classifier) -> None:
    drain = sig(classifier, "r1", ROAD_DRAIN, locality="xa-an-binh", kind=Kind.KIEN_NGHI)
    again = sig(classifier, "r3", ROAD_DRAIN_AGAIN, locality="xa-an-binh")
    assert not any("other section" in e for e in compare(again, drain).evidence)
    assert find_duplicate(candidate=again, open_cases=[drain]) is not None


def test_other_field_and_level_is_only_suggested(classifier: Classifier) -> None:
    # the school's teachers (GIAO_DUC / tinh) vs the alley to its gate (GIAO_THONG / xa)
    teachers = sig(
        classifier,
        "s1",
        "Cử tri tổ dân phố 7 đề nghị bổ sung giáo viên Toán và Tin học cho Trường THCS Kim "
        "Sơn; năm nay trường thiếu 4 giáo viên.",
        locality="phuong-bac-son",
        kind=Kind.KIEN_NGHI,
    )
    alley = sig(
        classifier,
        "s2",
        "Cử tri tổ dân phố 7 đề nghị phường lát lại ngõ 12 dẫn vào cổng Trường THCS Kim Sơn, "
        "mặt ngõ nhiều ổ gà, học sinh hay ngã.",
        locality="phuong-bac-son",
        kind=Kind.KIEN_NGHI,
    )
    assert teachers.category != alley.category
    assert teachers.level != alley.level
    result = compare(alley, teachers)
    assert any(e.startswith("other field and level") for e in result.evidence)
    assert find_duplicate(candidate=alley, open_cases=[teachers]) is None
    ranked = rank_candidates(alley, [teachers])
    assert all(r.verdict != MERGE for r in ranked)
    assert [r.verdict for r in ranked] in ([], [SUGGEST_VERDICT])
