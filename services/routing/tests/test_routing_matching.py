"""Matching for issue 12: abbreviations as data, words in passing, object identity, the
province-wide bucket, denunciations apart, ranked suggestions with two bars, dismissed pairs.

Every text here is written for these tests (not taken from the corpora).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phoihop_common.config import default_config_dir
from phoihop_routing import duplicates
from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import (
    MERGE,
    NATIONAL_BUCKET,
    PROVINCE_BUCKET,
    SUGGEST_VERDICT,
    CaseSignature,
    DuplicateIndex,
    compare,
    find_duplicate,
    rank_candidates,
    signature,
)
from phoihop_routing.textmatch import (
    ABBREVIATIONS_FILE,
    AbbreviationsError,
    MatchText,
    Normaliser,
    default_normaliser,
    load_abbreviations,
)
from phoihop_schemas.events import Kind, Level


@pytest.fixture(scope="module")
def normaliser() -> Normaliser:
    return default_normaliser()


def sig(
    classifier: Classifier,
    rid: str,
    text: str,
    locality: str = "xa-tan-phu",
    kind: Kind = Kind.KIEN_NGHI,
) -> CaseSignature:
    c = classifier.classify(text=text, kind=kind, locality=locality)
    return signature(recommendation_id=rid, text=text, locality=locality, classification=c)


# ---------------------------------------------------------------- the normalisation table


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ("ĐT.615", "đường tỉnh 615"),
        ("ĐT615", "đường tỉnh 615"),
        ("DT 615", "đường tỉnh 615"),
        ("đt-615", "đường tỉnh 615"),
        ("tỉnh lộ 615", "đường tỉnh 615"),
        ("QL2C", "quốc lộ 2c"),
        ("QL.37", "quốc lộ 37"),
        ("Quốc lộ 37", "quốc lộ 37"),
        ("rút BHXH", "rút bảo hiểm xã hội"),
        ("thẻ BHYT", "thẻ bảo hiểm y tế"),
        ("trường THPT", "trường trung học phổ thông"),
        ("TDP 7", "tổ dân phố 7"),
        ("KDC Cảng Mới", "khu dân cư Cảng Mới"),
        ("UBND xã", "ủy ban nhân dân xã"),
        ("HĐND tỉnh", "hội đồng nhân dân tỉnh"),
        ("Sở GD&ĐT", "Sở giáo dục và đào tạo"),
        ("đề nghị QH sửa", "đề nghị quốc hội sửa"),
        ("rút 1 lần", "rút một lần"),
    ],
)
def test_abbreviations_are_written_out(normaliser: Normaliser, typed: str, written: str) -> None:
    assert normaliser.normalise(f"Xin hỏi về {typed} ạ") == f"Xin hỏi về {written} ạ"


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ("nha e ko co nuoc", "nha em khong co nuoc"),
        ("k dc tra loi j ca", "khong duoc tra loi gi ca"),
        ("hok ai xuong", "khong ai xuong"),
        ("noi vs ng dan", "noi voi nguoi dan"),
        ("mn phan anh r", "moi nguoi phan anh roi"),
        ("cty no BHXH", "cong ty no bao hiem xa hoi"),
        ("song dt yeu", "song dien thoai yeu"),
        ("DT761 o ga", "duong tinh 761 o ga"),
    ],
)
def test_teencode_keeps_a_plain_text_plain(
    normaliser: Normaliser, typed: str, written: str
) -> None:
    """A web-form text without diacritics gets the expansions without diacritics too."""
    assert normaliser.normalise(typed) == written
    assert not MatchText.of(typed, normaliser=normaliser).has_diacritics


def test_normalisation_leaves_look_alikes_alone(normaliser: Normaliser) -> None:
    # "hỏng" (broken) is not teencode for không; "100k" is an amount, not "k"; a name
    # after a code stays a capitalised name
    assert normaliser.normalise("Đèn hỏng, đổ 100k") == "Đèn hỏng, đổ 100 nghìn"
    assert normaliser.normalise("Trường THPT Hồng Lĩnh") == "Trường trung học phổ thông Hồng Lĩnh"
    assert normaliser.normalise("") == ""


def test_matching_sees_the_long_forms(normaliser: Normaliser) -> None:
    short = MatchText.of("DT615 o ga, ko ai sua", normaliser=normaliser)
    long = MatchText.of("duong tinh 615 o ga, khong ai sua", normaliser=normaliser)
    assert short.folded == long.folded
    assert short.original == "DT615 o ga, ko ai sua"  # the text as typed is kept


def test_abbreviations_are_data(tmp_path: Path) -> None:
    doc = yaml.safe_load((default_config_dir() / ABBREVIATIONS_FILE).read_text(encoding="utf-8"))
    doc["words"]["nhà văn hóa"] = ["nvh", "nhà vh"]
    path = tmp_path / ABBREVIATIONS_FILE
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    custom = load_abbreviations(path)
    assert custom.normalise("sửa nhà vh thôn") == "sửa nhà văn hóa thôn"
    assert Normaliser.empty().normalise("ko dc") == "ko dc"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": "t", "words": {"không": ["ko"], "khó": ["ko"]}}, "expands to both"),
        ({"version": "t", "patterns": [{"match": "(", "to": "x"}]}, "invalid regular expression"),
        ({"words": {}}, "version"),
    ],
)
def test_invalid_abbreviations_are_refused(tmp_path: Path, doc: object, message: str) -> None:
    path = tmp_path / ABBREVIATIONS_FILE
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(AbbreviationsError, match=message):
        load_abbreviations(path)


def test_informal_and_formal_texts_are_routed_alike(classifier: Classifier) -> None:
    formal = classifier.classify(
        text="Cử tri đề nghị Quốc hội sửa Luật Bảo hiểm xã hội cho người lao động được rút "
        "bảo hiểm xã hội một lần.",
        kind=Kind.KIEN_NGHI,
        locality="xa-an-binh",
    )
    informal = classifier.classify(
        text="e nghi viec r ma ko dc rut BHXH 1 lan, mong QH sua luat giup ng lao dong",
        kind=Kind.PHAN_ANH,
        locality="xa-hoa-lac",
    )
    for c in (formal, informal):
        assert (c.category, c.level, c.agency) == ("BAO_HIEM", Level.TRUNG_UONG, "DOAN_DBQH")
        assert c.national_scope
        assert c.decision.confidence >= classifier.triage_below


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("Đề nghị cán bộ tư pháp xã hướng dẫn đăng ký khai sinh cho cháu.", Level.XA),
        ("Me toi bi ke gia danh can bo cong an lua chuyen tien, de nghi cong an tinh dieu tra.",
         Level.TINH),
        ("Đề nghị Bộ Tư pháp sửa quy định về đăng ký khai sinh cho trẻ sinh tại nhà.",
         Level.TRUNG_UONG),
    ],
)  # fmt: skip
def test_a_civil_servant_is_not_a_ministry(classifier: Classifier, text: str, level: Level) -> None:
    c = classifier.classify(text=text, kind=Kind.PHAN_ANH, locality="xa-na-hang")
    assert c.level is level, c.decision.evidence


@pytest.mark.parametrize(
    ("text", "category", "level"),
    [
        # the waste is the matter; the cultural house is where it lies
        (
            "Có người đổ phế thải xây dựng cạnh nhà văn hóa thôn Bờ Sông, đề nghị xã dọn.",
            "MOI_TRUONG",
            Level.XA,
        ),
        # a hamlet road that leads to the provincial road is the commune's
        (
            "Đề nghị xã bê tông hóa đường thôn Bờ Sông ra đến đường tỉnh 615.",
            "GIAO_THONG",
            Level.XA,
        ),
        # street lights in an alley are lighting, not the alley
        (
            "Đề nghị phường thay bóng đèn chiếu sáng trong ngõ 31 phố Hàng Chè.",
            "XAY_DUNG_QUY_HOACH",
            Level.XA,
        ),
        # pollution by livestock wastewater, not livestock
        (
            "Trại lợn xả nước thải chăn nuôi ra mương, mùi hôi khắp xóm.",
            "MOI_TRUONG",
            Level.TINH,
        ),
    ],
)
def test_words_in_passing_do_not_decide(
    classifier: Classifier, text: str, category: str, level: Level
) -> None:
    c = classifier.classify(text=text, kind=Kind.KIEN_NGHI, locality="phuong-trung-tam")
    assert (c.category, c.level) == (category, level), c.decision.evidence


def test_in_passing_terms_are_explained(classifier: Classifier) -> None:
    c = classifier.classify(
        text="Đề nghị xã bê tông hóa đường thôn Bờ Sông ra đến đường tỉnh 615.",
        kind=Kind.KIEN_NGHI,
        locality="xa-tan-phu",
    )
    assert any("in passing duong tinh" in e for e in c.decision.evidence), c.decision.evidence


def test_confidence_is_about_the_body(classifier: Classifier) -> None:
    """At commune level every field goes to the commune: a close runner-up field that goes
    to the same body does not send the item to triage; one that goes elsewhere does count."""
    c = classifier.classify(
        text="Đèn đường ở ngõ 7 hỏng hết, mặt ngõ cũng vỡ nát, đề nghị phường sửa cả đèn và ngõ.",
        kind=Kind.KIEN_NGHI,
        locality="phuong-trung-tam",
    )
    assert (c.level, c.agency) == (Level.XA, "UBND_XA_PHUONG_TRUNG_TAM")
    assert any(e.startswith("runner-up XAY_DUNG_QUY_HOACH") for e in c.decision.evidence)
    assert c.decision.confidence >= 0.8
    two_bodies = classifier.classify(
        text="Mất điện và mất nước sinh hoạt liên tục cả tuần, đề nghị kiểm tra.",
        kind=Kind.KIEN_NGHI,
        locality="phuong-trung-tam",
    )
    assert two_bodies.level is Level.TINH
    assert two_bodies.decision.confidence < 0.5


# ---------------------------------------------------------------- buckets

PROGRAMME_A = (
    "Cử tri xã Tân Phú đề nghị tỉnh nâng mức hỗ trợ làm nhà cho hộ nghèo trong chương trình "
    "xóa nhà tạm của tỉnh từ 40 triệu lên 60 triệu đồng mỗi hộ."
)
PROGRAMME_B = (
    "Muc ho tro xoa nha tam cua tinh 40 trieu/ho khong du xay nha, de nghi tinh nang muc ho "
    "tro cho ho ngheo."
)
ONE_HOUSEHOLD = (
    "Bà Lò Thị Hoa, hộ nghèo, trình bày nhà bà dột nát nhưng không có tên trong danh sách "
    "hỗ trợ xóa nhà tạm năm nay, đề nghị xem xét bổ sung."
)


def test_provincial_programme_meets_across_communes(classifier: Classifier) -> None:
    a = sig(classifier, "a", PROGRAMME_A, locality="xa-tan-phu")
    b = sig(classifier, "b", PROGRAMME_B, locality="xa-hoa-lac", kind=Kind.PHAN_ANH)
    assert a.bucket == b.bucket == PROVINCE_BUCKET
    found = find_duplicate(candidate=b, open_cases=[a])
    assert found is not None
    assert found[0].recommendation_id == "a"


def test_one_household_and_a_denunciation_stay_in_their_commune(classifier: Classifier) -> None:
    household = sig(classifier, "h", ONE_HOUSEHOLD, kind=Kind.TIEP_CONG_DAN)
    assert household.bucket == "local:xa-tan-phu"
    denunciation = sig(classifier, "d", PROGRAMME_A, kind=Kind.TO_CAO)
    assert denunciation.bucket == "local:xa-tan-phu"
    national = sig(classifier, "n", "Đề nghị Quốc hội sửa Luật Đất đai về bảng giá đất.")
    assert national.bucket == NATIONAL_BUCKET


def test_hamlets_do_not_veto_in_a_province_wide_bucket(classifier: Classifier) -> None:
    a = sig(classifier, "a", "Cử tri thôn Nà Cọ: " + PROGRAMME_A, locality="xa-tan-phu")
    b = sig(classifier, "b", "Cử tri bản Pác Bó: " + PROGRAMME_A, locality="xa-na-hang")
    assert a.bucket == b.bucket == PROVINCE_BUCKET
    assert not compare(b, a).vetoed


# ---------------------------------------------------------------- object identity

NEVER_MERGED = [
    pytest.param(
        "Trại lợn Hòa Phát xả nước thải ra suối, mùi hôi nồng nặc, đề nghị tỉnh kiểm tra.",
        "Công ty TNHH An Khang xả nước thải ra suối, mùi hôi nồng nặc, đề nghị tỉnh kiểm tra.",
        id="two firms (a farm and a company) of one commune",
    ),
    pytest.param(
        "Lò gạch Tân Tiến đốt lò khói đen mù mịt, đề nghị kiểm tra cơ sở.",
        "Cơ sở Thành Công đốt lò gạch khói đen mù mịt, đề nghị kiểm tra cơ sở.",
        id="two kilns, named by kind and by firm",
    ),
    pytest.param(
        "Đề nghị xã đổ cấp phối đường nội đồng cánh đồng Bãi Sậy, mùa mưa lầy lội.",
        "Đề nghị xã đổ cấp phối đường nội đồng cánh đồng Gò Găng, mùa mưa lầy lội.",
        id="two field roads",
    ),
    pytest.param(
        "Xưởng gỗ Hưng Thịnh cưa xẻ cả đêm, bụi gỗ bay vào nhà dân.",
        "Xưởng gỗ Minh Long cưa xẻ cả đêm, bụi gỗ bay vào nhà dân.",
        id="object word and name apart: xưởng gỗ X",
    ),
    pytest.param(
        "Đường tỉnh 615 đoạn qua thôn Bờ Sông nhiều ổ gà, xe tải đi rất nguy hiểm.",
        "Đường thôn Bờ Sông ra đến đường tỉnh 615 nhiều ổ gà, xe máy đi rất nguy hiểm, đề "
        "nghị xã làm lại.",
        id="commune road leading to the provincial road it names",
    ),
    pytest.param(
        "Đường liên thôn Nà Cọ – Khuổi Mường lầy lội, đề nghị xã bê tông hóa.",
        "Đường liên thôn Nà Cọ – Pác Bó lầy lội, đề nghị xã bê tông hóa.",
        id="hamlet pairs written with a dash",
    ),
]


@pytest.mark.parametrize(("first", "second"), NEVER_MERGED)
def test_different_named_objects_never_merge(
    classifier: Classifier, first: str, second: str
) -> None:
    case = sig(classifier, "case", first)
    new = sig(classifier, "new", second)
    assert compare(new, case).vetoed, compare(new, case)
    assert find_duplicate(candidate=new, open_cases=[case]) is None
    assert rank_candidates(new, [case]) == []  # not even suggested


def test_firm_and_its_facility_are_one_object(classifier: Classifier) -> None:
    a = sig(classifier, "a", "Cơ sở Phúc Lộc đốt lò gạch suốt đêm, khói đen phả vào nhà dân.")
    b = sig(classifier, "b", "lo gach Phuc Loc dot lo ca dem, khoi den mu mit, de nghi kiem tra")
    assert "facility:phuc loc" in a.identifiers
    assert "facility:phuc loc" in b.identifiers
    found = find_duplicate(candidate=b, open_cases=[a])
    assert found is not None


def test_formal_and_informal_national_road(classifier: Classifier) -> None:
    a = sig(
        classifier,
        "a",
        "Cử tri đề nghị xử lý sạt lở taluy trên Quốc lộ 4H đoạn dốc Pha Lủng, đất đá lấp nửa "
        "mặt đường.",
        locality="xa-na-hang",
    )
    b = sig(
        classifier,
        "b",
        "QL4H doan doc Pha Lung dat da sat xuong lap nua mat duong, de nghi xu ly gap",
        locality="xa-na-hang",
    )
    assert {"road:ql4h", "pass:pha lung"} <= set(a.identifiers) & set(b.identifiers)
    assert find_duplicate(candidate=b, open_cases=[a]) is not None


# ---------------------------------------------------------------- denunciations

DRUGS = (
    "Tôi tố cáo nhóm thanh niên bán ma túy ở dãy trọ cuối ngõ 40 phố Hàng Chè, đề nghị công "
    "an triệt phá."
)
DRUGS_AGAIN = (
    "Tôi làm đơn tố cáo việc mua bán ma túy tại dãy trọ cuối ngõ 40 phố Hàng Chè, tối nào "
    "cũng có người ra vào mua bán."
)
GAMBLING = "Tôi tố cáo quán nước đầu ngõ 40 phố Hàng Chè tổ chức ghi lô đề cho công nhân."


def test_to_cao_only_with_to_cao(classifier: Classifier) -> None:
    first = sig(classifier, "t1", DRUGS, locality="phuong-trung-tam", kind=Kind.TO_CAO)
    second = sig(classifier, "t2", DRUGS_AGAIN, locality="phuong-trung-tam", kind=Kind.TO_CAO)
    found = find_duplicate(candidate=second, open_cases=[first])
    assert found is not None
    assert found[0].recommendation_id == "t1"
    for kind in (Kind.KIEN_NGHI, Kind.PHAN_ANH, Kind.KHIEU_NAI, Kind.TIEP_CONG_DAN):
        other = sig(classifier, "o", DRUGS_AGAIN, locality="phuong-trung-tam", kind=kind)
        assert compare(other, first).vetoed
        assert rank_candidates(other, [first]) == []  # never merged, never suggested
        assert rank_candidates(first, [other]) == []


def test_two_offences_of_one_street_are_two_concerns(classifier: Classifier) -> None:
    drugs = sig(classifier, "t1", DRUGS, locality="phuong-trung-tam", kind=Kind.TO_CAO)
    gambling = sig(classifier, "t2", GAMBLING, locality="phuong-trung-tam", kind=Kind.TO_CAO)
    assert find_duplicate(candidate=gambling, open_cases=[drugs]) is None


# ---------------------------------------------------------------- ranking, bars, dismissed


def _hand(rid: str, words: tuple[str, ...], **kw: object) -> CaseSignature:
    values: dict[str, object] = {
        "recommendation_id": rid,
        "locality": "xa-tan-phu",
        "bucket": "local:xa-tan-phu",
        "kind": "kien_nghi",
        "category": "GIAO_THONG",
        "level": "xa",
        "words": words,
    }
    values.update(kw)
    return CaseSignature(**values)  # type: ignore[arg-type]


WORDS = tuple(f"w{i:02d}" for i in range(20))


def test_ranking_has_two_bars_and_a_limit() -> None:
    new = _hand("new", WORDS)
    close = _hand("close", WORDS[:16])  # words cosine 0.89 -> 0.40 similarity: merge
    middle = _hand("middle", WORDS[:8])  # 0.63 -> 0.28: under the merge bar, suggested
    far = _hand("far", WORDS[:3])  # 0.39 -> 0.17: suggested
    none = _hand("none", ("x1", "x2", "x3"))  # nothing shared
    # another field: 0.28, over its suggestion bar (0.25), far under its merge bar (0.45)
    other_field = _hand("other", WORDS[:8], category="DAT_DAI")
    ranked = rank_candidates(new, [none, far, middle, close, other_field])
    # merges first; then suggestions by how close they come to their own merge bar
    assert [c.recommendation_id for c in ranked] == ["close", "middle", "far"]
    assert [c.verdict for c in ranked] == [MERGE, SUGGEST_VERDICT, SUGGEST_VERDICT]
    longer = rank_candidates(new, [none, far, middle, close, other_field], limit=5)
    assert [c.recommendation_id for c in longer] == ["close", "middle", "far", "other"]
    assert all(0.0 < c.similarity <= 1.0 for c in ranked)
    assert ranked[0].evidence[0].startswith("similarity")
    assert any("words" in e for e in ranked[1].evidence)
    found = find_duplicate(candidate=new, open_cases=[none, far, middle, close, other_field])
    assert found is not None
    assert (found[0].recommendation_id, found[1]) == ("close", ranked[0].similarity)
    # a longer list, and the bars as parameters
    assert [c.recommendation_id for c in rank_candidates(new, [far, middle], limit=5)] == [
        "middle",
        "far",
    ]
    assert rank_candidates(new, [far, middle], suggest=0.5, suggest_other_field=0.5) == []
    assert rank_candidates(new, [close], limit=0) == []


def test_index_ranks_like_the_plain_function(classifier: Classifier) -> None:
    texts = [
        "Đường liên xóm 2 – xóm 5 lầy lội, đề nghị xã bê tông hóa.",
        "Đề nghị xã lắp đèn chiếu sáng đường liên xóm 2 – xóm 5.",
        "Xin xã bê tông hóa con đường đất lầy lội nối xóm 2 với xóm 5.",
        "Mương thoát nước xóm 2 bị tắc, nước tràn vào nhà.",
        "Duong lien xom 2 - xom 5 lay loi qua, mong xa lam duong.",
    ]
    sigs = [sig(classifier, f"r{i}", t) for i, t in enumerate(texts)]
    index = DuplicateIndex(sigs[:-1])
    candidate = sigs[-1]
    assert index.rank(candidate=candidate) == rank_candidates(candidate, sigs[:-1])
    found = index.find(candidate=candidate)
    ranked = index.rank(candidate=candidate)
    assert found is not None
    assert ranked[0].verdict == MERGE
    assert ranked[0].recommendation_id == found[0].recommendation_id


def test_dismissed_pairs_are_never_merged_nor_suggested(classifier: Classifier) -> None:
    road = sig(classifier, "road", "Đường liên xóm 2 – xóm 5 lầy lội, đề nghị xã bê tông hóa.")
    copy = sig(classifier, "copy", "Duong lien xom 2 - xom 5 lay loi, de nghi xa be tong hoa.")
    assert find_duplicate(candidate=copy, open_cases=[road]) is not None
    for dismissed in ({("copy", "road")}, {("road", "copy")}):
        assert find_duplicate(candidate=copy, open_cases=[road], dismissed=dismissed) is None
        assert DuplicateIndex([road]).find(candidate=copy, dismissed=dismissed) is None
        assert rank_candidates(copy, [road], dismissed=dismissed) == []
        assert DuplicateIndex([road]).rank(candidate=copy, dismissed=dismissed) == []
    # another pair's dismissal changes nothing
    assert rank_candidates(copy, [road], dismissed={("copy", "x")})[0].verdict == MERGE


def test_version_is_exposed_for_decisions() -> None:
    assert duplicates.VERSION == duplicates.SIGNATURE_VERSION
    assert duplicates.VERSION.startswith("dup.")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["categories"][0].update(province_scope=True, level="tinh"),
            "scopes are for level rules",
        ),
        (
            lambda d: d["levels"][0].update(province_scope=True),
            "province_scope only applies to tinh",
        ),
        (lambda d: d.update(in_passing={"after": ["một hai ba"]}), "one or two words"),
        (lambda d: d.update(in_passing={"blocked": ["ra"]}), "a blocked run is two words"),
    ],
)
def test_new_rule_settings_are_validated(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    from phoihop_routing.rules import RulesError, load_rules

    doc = {
        "version": "t1",
        "levels": [{"id": "tw.a", "level": "trung_uong", "terms": ["quốc hội"]}],
        "categories": [{"id": "gt.a", "category": "GIAO_THONG", "terms": ["đường"]}],
    }
    change(doc)
    path = tmp_path / "routing_rules.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        load_rules(path)


def test_pattern_prefilter_only_skips_patterns_that_cannot_match() -> None:
    from phoihop_routing.rules import leading_words

    assert leading_words(r"\bngo \d+\b") == {"ngo"}
    assert leading_words(r"(?<!can )\bbo (y te|cong an)\b") == {"bo"}
    assert leading_words(r"\b(de nghi|mong) tinh\b") == {"de", "mong"}
    # a word glued to what follows, an optional letter, no opening word: always run
    assert leading_words(r"\bdt\d+") is None
    assert leading_words(r"\bngo?\b") is None
    assert leading_words(r"(a|b)c") is None
