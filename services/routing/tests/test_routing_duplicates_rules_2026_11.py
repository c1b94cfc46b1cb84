"""Duplicates under rules 2026.11 / dup.2026.11.1 (issue 12, "Better matching").

Every text here is written for these tests (not taken from the corpora).
"""

from __future__ import annotations

from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    NATIONAL_BUCKET,
    SIGNATURE_VERSION,
    VERSION,
    CaseSignature,
    compare,
    find_duplicate,
    rank_candidates,
    signature,
)
from phoihop_schemas.events import Kind


def sig(
    classifier: Classifier,
    rid: str,
    text: str,
    locality: str = "xa-dong-tien",
    kind: Kind = Kind.KIEN_NGHI,
) -> CaseSignature:
    c = classifier.classify(text=text, kind=kind, locality=locality)
    return signature(recommendation_id=rid, text=text, locality=locality, classification=c)


def test_duplicate_rules_version() -> None:
    assert SIGNATURE_VERSION == VERSION == "dup.2026.11.3"


NATIONAL_ROAD = (
    "Cử tri thôn Khe Lim đề nghị cải tạo đoạn cua gấp trên quốc lộ 15 tại dốc Đá Mài, xe tải "
    "lật liên tiếp."
)
NATIONAL_ROAD_AGAIN = (
    "QL15 doan doc Da Mai cua gap qua, thang nay lai co xe tai lat, de nghi cai tao gap."
)
COMMUNE_ROAD = (
    "Cử tri thôn Khe Lim đề nghị xã mở rộng đường liên thôn Khe Lim – Bản Vèn, đoạn nối ra "
    "quốc lộ 15 chỉ rộng 2 m, xe cứu thương không vào được."
)


def test_a_commune_road_never_merges_with_the_national_road_it_joins(
    classifier: Classifier,
) -> None:
    national = sig(classifier, "n1", NATIONAL_ROAD)
    commune = sig(classifier, "c1", COMMUNE_ROAD)
    assert national.level == "trung_uong"
    assert commune.level == "xa"
    # the same commune, the same road number named, yet two objects of two classes
    assert national.bucket == commune.bucket
    result = compare(commune, national)
    assert result.vetoed
    assert any("roadclass" in e for e in result.evidence)
    assert find_duplicate(candidate=commune, open_cases=[national]) is None
    assert rank_candidates(commune, [national]) == []
    # the national road's own paraphrase still merges
    again = sig(classifier, "n2", NATIONAL_ROAD_AGAIN)
    found = find_duplicate(candidate=again, open_cases=[commune, national])
    assert found is not None
    assert found[0].recommendation_id == "n1"


SOLAR = [
    (
        "Cử tri xã Đồng Tiến đề nghị Chính phủ sửa quy định để hộ gia đình lắp điện mặt trời "
        "mái nhà được bán điện dư lên lưới, không bị khống chế sản lượng như hiện nay.",
        "xa-dong-tien",
    ),
    (
        "Nha toi lap tam pin mat troi tren mai, dien du phat len luoi khong duoc tinh tien. "
        "De nghi Chinh phu cho dan ban dien du voi gia hop ly.",
        "xa-an-binh",
    ),
]


def test_rooftop_solar_is_one_national_concern(classifier: Classifier) -> None:
    first = sig(classifier, "s1", SOLAR[0][0], locality=SOLAR[0][1])
    second = sig(classifier, "s2", SOLAR[1][0], locality=SOLAR[1][1])
    for s in (first, second):
        assert s.category == "DIEN"
        assert s.bucket == NATIONAL_BUCKET
        assert "dien.renewable" in s.concepts
    found = find_duplicate(candidate=second, open_cases=[first])
    assert found is not None


def test_one_households_solar_connection_stays_local(classifier: Classifier) -> None:
    own = sig(
        classifier,
        "h1",
        "Nhà tôi lắp điện mặt trời mái nhà đã 4 tháng, nộp hồ sơ bán điện dư nhưng điện lực "
        "chưa lắp công tơ hai chiều.",
    )
    assert own.category == "DIEN"
    assert own.level == "tinh"
    assert own.bucket == "local:xa-dong-tien"


def test_two_offences_at_one_place_are_two_concerns(classifier: Classifier) -> None:
    # one field (crime), one place, but no specific rule in common: drugs vs betting
    drugs = sig(
        classifier,
        "d1",
        "Tôi tố cáo quán bi-a Hoàng Long đầu ngõ 15 phố Yên Ninh cho thanh niên sử dụng ma "
        "túy trong phòng kín.",
        kind=Kind.TO_CAO,
    )
    betting = sig(
        classifier,
        "b1",
        "Tôi tố cáo quán bi-a Hoàng Long đầu ngõ 15 phố Yên Ninh tổ chức cá độ bóng đá cho "
        "học sinh.",
        kind=Kind.TO_CAO,
    )
    assert drugs.category == betting.category == "AN_NINH_TRAT_TU"
    result = compare(betting, drugs)
    assert result.vetoed
    # since 2026.11.2 "đầu ngõ 15" is a position (in passing), so the alley fires no road
    # rule in either text and no rule is shared at all: the plain "different concern"
    assert any("different concern" in e for e in result.evidence)
    assert find_duplicate(candidate=betting, open_cases=[drugs]) is None
    # the same offence told again still merges
    again = sig(
        classifier,
        "d2",
        "Quán bi-a Hoàng Long đầu ngõ 15 phố Yên Ninh vẫn có người vào phòng kín dùng ma "
        "túy, tôi đề nghị công an triệt phá.",
        kind=Kind.TO_CAO,
    )
    found = find_duplicate(candidate=again, open_cases=[betting, drugs])
    assert found is not None
    assert found[0].recommendation_id == "d1"
