"""Rules 2026.11: generic rules added after a blind evaluation (issue 12, "Better matching").

Each test pins one generic rule with texts written for these tests (not taken from any
corpus): vocabulary a field was missing, informal and unaccented forms, a level rule for a
commune road that only leads to a national road, a road named as the way to a school,
exact terms compared in their own form, and clear evidence clearing the triage bar.
"""

from __future__ import annotations

import pytest

from phoihop_common.config import default_config_dir
from phoihop_routing.classify import Classification, Classifier
from phoihop_routing.textmatch import Normaliser, load_abbreviations
from phoihop_schemas.events import Kind, Level


@pytest.fixture(scope="module")
def normaliser() -> Normaliser:
    return load_abbreviations(default_config_dir() / "abbreviations.yaml")


def classify(
    classifier: Classifier,
    text: str,
    locality: str = "xa-an-binh",
    kind: Kind = Kind.PHAN_ANH,
) -> Classification:
    return classifier.classify(text=text, kind=kind, locality=locality)


def test_rules_version_names_the_tuning(classifier: Classifier) -> None:
    assert classifier.version == "2026.11.3"
    c = classify(classifier, "Đề nghị xã sửa đường liên thôn Khe Mây – Đồng Vầu.")
    assert c.decision.version == "2026.11.3"


# ---------------------------------------------------------------- level: commune roads


@pytest.mark.parametrize(
    "text",
    [
        "Cử tri thôn Nà Lẹ đề nghị xã rải nhựa đường liên thôn Nà Lẹ – Cốc Phường, đoạn dẫn "
        "ra quốc lộ 15, mặt đường toàn ổ gà.",
        "Duong lien xom Bai Soi - Go Dau dang lay loi, doan noi ra QL15 xe may truot nga "
        "lien, de nghi xa be tong hoa.",
        "Đề nghị mở rộng đường trục thôn Tân Lập vì đoạn ra tới Quốc lộ 8B quá hẹp, hai xe "
        "không tránh nhau được.",
    ],
)
def test_a_commune_road_leading_to_a_national_road_is_the_communes(
    classifier: Classifier, text: str
) -> None:
    c = classify(classifier, text)
    assert (c.category, c.level, c.agency) == ("GIAO_THONG", Level.XA, "UBND_XA_XA_AN_BINH")
    assert not c.national_scope
    assert any("only in passing" in e for e in c.decision.evidence)
    assert "level.weighed.xa" in c.decision.rule


@pytest.mark.parametrize(
    "text",
    [
        # the national road itself is the object: trung_uong, even with a hamlet named
        "Đoạn quốc lộ 15 qua thôn Nà Lẹ bị sụt lún sâu, đề nghị sửa chữa sớm.",
        # on ("trên") the national road, no commune road asked about
        "Khúc cua trên quốc lộ 15 gần thôn Nà Lẹ rất nguy hiểm, đề nghị lắp biển báo.",
        # a commune road named without a destination marker before the national road
        "Nút giao giữa quốc lộ 15 và đường liên thôn Nà Lẹ thiếu đèn tín hiệu, xe tải chạy "
        "ẩu, đề nghị tổ chức lại giao thông.",
    ],
)
def test_a_national_road_asked_about_stays_national(classifier: Classifier, text: str) -> None:
    c = classify(classifier, text)
    assert (c.category, c.level, c.agency) == ("GIAO_THONG", Level.TRUNG_UONG, "DOAN_DBQH")


def test_a_national_rule_still_wins_over_a_commune_road(classifier: Classifier) -> None:
    # only a national *object* named in passing yields to the commune road, never a law
    c = classify(
        classifier,
        "Đề nghị Chính phủ sửa nghị định để đường liên thôn dẫn ra quốc lộ được hỗ trợ vốn.",
    )
    assert c.level is Level.TRUNG_UONG
    assert c.national_scope


@pytest.mark.parametrize(
    "text",
    [
        "Duong xom vao truong mam non Hoa Sen mua nao cung ngap, cac chau phai loi nuoc, de "
        "nghi xa do be tong va nang nen duong.",
        "Đường vào trường tiểu học Bãi Cát mới đổ bê tông được một nửa, đoạn còn lại lầy "
        "lội, đề nghị xã làm nốt.",
    ],
)
def test_a_road_named_as_the_way_to_a_school_is_transport(
    classifier: Classifier, text: str
) -> None:
    c = classify(classifier, text)
    assert (c.category, c.level) == ("GIAO_THONG", Level.XA)


def test_the_school_itself_is_still_education(classifier: Classifier) -> None:
    c = classify(classifier, "Trường tiểu học Bãi Cát thiếu 3 giáo viên, phòng học dột nát.")
    assert (c.category, c.level) == ("GIAO_DUC", Level.TINH)


def test_the_head_of_an_alley_is_a_place_not_the_matter(classifier: Classifier) -> None:
    formal = classify(
        classifier,
        "Điểm tập kết rác đầu ngõ 72 phố Cầu Đá ùn ứ, xe gom rác ba ngày mới đến một lần.",
        locality="phuong-trung-tam",
    )
    plain = classify(
        classifier,
        "Dau ngo 72 rac chat dong may hom, ko ai don rac, ruoi bay vao nha.",
        locality="phuong-trung-tam",
    )
    for c in (formal, plain):
        assert (c.category, c.level) == ("MOI_TRUONG", Level.XA)
        assert c.agency == "UBND_XA_PHUONG_TRUNG_TAM"
        assert c.decision.confidence >= 0.4


# ---------------------------------------------------------------- vocabulary by field


@pytest.mark.parametrize(
    ("text", "category", "level"),
    [
        # local order: portable speakers, shouting late, youths drinking
        (
            "Nhà bên cạnh tối nào cũng bật loa kéo hát ầm ĩ, con nhỏ ko ngủ đc, mong phường "
            "nhắc nhở.",
            "AN_NINH_TRAT_TU",
            Level.XA,
        ),
        (
            "San kho HTX toi nao cung co nhom thanh nien ngoi nhau, hat ho den khuya. De nghi "
            "xa cho to an ninh xuong.",
            "AN_NINH_TRAT_TU",
            Level.XA,
        ),
        # gambling on cockfights
        (
            "Tôi tố cáo sới gà ở bãi sông thôn Cồn Mây, mỗi chiều có hàng chục người đặt cược.",
            "AN_NINH_TRAT_TU",
            Level.TINH,
        ),
        # usury: interest per day, smashing and threats (not "đập", a dam)
        (
            "Một nhóm cho vay lãi 5 nghìn đồng một triệu mỗi ngày, ai chậm trả thì bị đến nhà "
            "đập phá, đe dọa.",
            "AN_NINH_TRAT_TU",
            Level.TINH,
        ),
        # fraud under a job-placement pretext (not labour export policy)
        (
            "Một người tự xưng là cán bộ công ty xuất khẩu lao động thu tiền của nhiều thanh "
            "niên rồi cắt liên lạc, đề nghị công an điều tra.",
            "AN_NINH_TRAT_TU",
            Level.TINH,
        ),
        # land transfer limits and rice land: land law, not crops
        (
            "Đề nghị Quốc hội sửa quy định hạn mức nhận chuyển nhượng đất trồng lúa để nông "
            "dân tích tụ ruộng đất.",
            "DAT_DAI",
            Level.TRUNG_UONG,
        ),
        # boundary stakes between neighbours: a land dispute, even with a quarrel
        (
            "Nhà bên cắm cọc lấn sang vườn nhà tôi, hai nhà cãi nhau mãi, mong xã xuống đo "
            "lại ranh và hòa giải.",
            "DAT_DAI",
            Level.XA,
        ),
        # land recovered for a provincial road: the recovery is the matter
        (
            "Tôi khiếu nại mức bồi thường cho 150 m² đất ở bị thu hồi để mở rộng đường tỉnh "
            "802, đơn giá thấp hơn giá thị trường.",
            "DAT_DAI",
            Level.TINH,
        ),
        # demolition order for a building: construction order
        (
            "Tôi khiếu nại quyết định buộc tháo dỡ phần cơi nới tầng 3 nhà tôi, phần này có "
            "trong bản vẽ được duyệt.",
            "XAY_DUNG_QUY_HOACH",
            Level.TINH,
        ),
        # a plant's waste pond is no irrigation reservoir
        (
            "Hồ chứa nước thải của xưởng chế biến mủ cao su tràn ra ruộng, trâu bò uống phải "
            "bị ốm.",
            "MOI_TRUONG",
            Level.TINH,
        ),
        # discharging "trộm" (secretly) is no theft
        (
            "Trại vịt Hồng Hà xả trộm nước thải ra sông vào ban đêm, đề nghị kiểm tra.",
            "MOI_TRUONG",
            Level.TINH,
        ),
        # an unaccented market: "cho" is not "chợ", the market words are
        (
            "Cho Dong Vang hop ngoai troi, nguoi ban nguoi mua deu uot, de nghi xa lam mai che "
            "cho va do nen cho.",
            "CONG_THUONG",
            Level.XA,
        ),
        # seed for replanting after a flood
        (
            "Mưa lớn làm hỏng hết lúa mới gieo, nhiều hộ không còn giống gieo lại, mong tỉnh "
            "hỗ trợ giống kịp vụ.",
            "NONG_NGHIEP",
            Level.TINH,
        ),
        # rooftop solar sold to the grid
        (
            "Đề nghị Bộ Công Thương cho hộ gia đình bán điện dư từ điện mặt trời mái nhà lên "
            "lưới với giá hợp lý.",
            "DIEN",
            Level.TRUNG_UONG,
        ),
        # VAT typed as "VAT"
        (
            "De nghi Quoc hoi giam thue VAT voi may moc nong nghiep.",
            "TAI_CHINH",
            Level.TRUNG_UONG,
        ),
    ],
)
def test_field_vocabulary(classifier: Classifier, text: str, category: str, level: Level) -> None:
    c = classify(classifier, text)
    assert (c.category, c.level) == (category, level), c.decision.evidence
    assert c.decision.confidence >= classifier.triage_below, c.decision.evidence


def test_exact_terms_are_compared_in_their_own_form(classifier: Classifier) -> None:
    # "trộm" (theft, an exact term) inside "xả trộm" (pollution) does not count
    c = classify(classifier, "Cơ sở mạ kẽm Tiến Thành xả trộm nước thải xuống kênh tiêu.")
    assert c.category == "MOI_TRUONG"
    assert "an.theft" not in c.concepts
    # a real theft still is one
    theft = classify(classifier, "Kẻ gian trộm hai con bò của nhà tôi trong đêm.")
    assert "an.theft" in theft.concepts


def test_unaccented_look_alikes_are_not_field_terms(classifier: Classifier) -> None:
    # "xuong" is "xuống" (go down), not "xưởng" (workshop); "lo. De nghi" is no "lô đề"
    c = classify(classifier, "Nuoc tran xuong duong, dan rat lo. De nghi xa nao vet muong.")
    assert "an.gambling" not in c.concepts
    assert "mt.generic" not in c.concepts
    gambling = classify(classifier, "Quan nuoc dau xom ghi lo de cong khai, de nghi cong an xu ly.")
    assert "an.gambling" in gambling.concepts


def test_clear_evidence_clears_the_triage_bar(classifier: Classifier) -> None:
    # unemployment insurance lodged at the employment service centre: the centre is where
    # the file went, not a jobs request of another body
    c = classify(
        classifier,
        "Tôi khiếu nại việc bị từ chối hưởng trợ cấp thất nghiệp dù đã nộp hồ sơ tại trung "
        "tâm dịch vụ việc làm đúng hạn.",
        kind=Kind.KHIEU_NAI,
    )
    assert (c.category, c.agency) == ("BAO_HIEM", "BHXH_TINH")
    assert c.decision.confidence >= classifier.triage_below
    assert "csxh.policy" not in c.concepts  # the centre only counts in passing


# ---------------------------------------------------------------- abbreviations


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ("Bỏ thuế VAT với phân bón", "Bỏ thuế giá trị gia tăng với phân bón"),
        ("bo thue VAT voi phan bon", "bo thue gia tri gia tang voi phan bon"),
        ("VAT 8% với xăng", "giá trị gia tăng 8% với xăng"),
        # alone, "vat" typed without diacritics is vật or vặt
        ("trom vat lien tuc", "trom vat lien tuc"),
        ("tiem phong cho vat nuoi", "tiem phong cho vat nuoi"),
    ],
)
def test_vat_is_written_out(normaliser: Normaliser, typed: str, written: str) -> None:
    assert normaliser.normalise(typed) == written
