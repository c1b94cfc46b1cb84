"""Generated Vietnamese recommendations for load: many categories, localities and objects.

Every text names its own object (hamlet, road number, school, transformer ...), drawn from
a counter, so routing classifies and assigns real work and its duplicate detection does not
merge the load into a few cases. Invented names only; nothing is copied from the corpus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LOCALITIES: tuple[tuple[str, str], ...] = (
    ("phuong-trung-tam", "phường Trung Tâm"),
    ("phuong-bac-son", "phường Bắc Sơn"),
    ("phuong-song-cong", "phường Sông Công"),
    ("xa-an-binh", "xã An Bình"),
    ("xa-tan-phu", "xã Tân Phú"),
    ("xa-hoa-lac", "xã Hòa Lạc"),
    ("xa-dong-tien", "xã Đồng Tiến"),
    ("xa-phu-xuyen", "xã Phú Xuyên"),
    ("xa-na-hang", "xã Na Hang"),
    ("dac-khu-dao-ngoc", "đặc khu Đảo Ngọc"),
)

SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ")
MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Thu", "Hữu", "Ngọc", "Quang")
GIVEN = ("An", "Bình", "Cường", "Dung", "Giang", "Hà", "Khánh", "Lan", "Mạnh", "Nga", "Phúc")
STREETS = ("Lê Lợi", "Trần Phú", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung")
SCHOOLS = ("Hoa Sen", "Sao Mai", "Hướng Dương", "Bình Minh", "Tuổi Thơ", "Hồng Đức")

# (category hint, kind, channel, template). Slots: {place} locality name, {n} a number that
# makes the object unique, {m} a second number, {street}, {school}, {person}.
# fmt: off
TEMPLATES: tuple[tuple[str, str, str, str], ...] = (
    ("GIAO_THONG", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} kiến nghị sửa chữa tuyến đường liên thôn {n} – thôn {m}; "
     "mặt đường bê tông bị nứt vỡ, mùa mưa ngập bùn, xe chở nông sản đi lại rất khó khăn."),
    ("GIAO_THONG", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri {place} đề nghị tỉnh sớm sửa chữa cầu tràn tại km {n}+{m}0 trên tuyến ĐT.7{n}; "
     "cầu xuống cấp, lan can gãy, học sinh qua lại không an toàn."),
    ("GIAO_THONG", "phan_anh", "cong_thong_tin",
     "Người dân tổ dân phố {n}, {place} phản ánh ngõ {m} đường {street} có nhiều ổ gà, "
     "đọng nước sau mưa, đề nghị lát lại mặt ngõ."),
    ("DAT_DAI", "khieu_nai", "don_thu",
     "Ông {person}, trú tại thôn {n}, {place} khiếu nại quyết định thu hồi {m}0 m² đất "
     "nông nghiệp để làm dự án cụm công nghiệp số {n}; mức bồi thường thấp hơn giá thị trường."),
    ("DAT_DAI", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} kiến nghị đẩy nhanh cấp giấy chứng nhận quyền sử dụng đất cho "
     "{m} hộ đã nộp hồ sơ từ năm 202{d}; đến nay chưa có kết quả."),
    ("MOI_TRUONG", "phan_anh", "tiep_cong_dan",
     "Người dân thôn {n}, {place} phản ánh cơ sở chế biến gỗ số {m} xả nước thải ra kênh tưới, "
     "gây mùi hôi và cá chết; đề nghị kiểm tra, xử lý."),
    ("MOI_TRUONG", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri {place} phản ánh tình trạng khai thác cát trái phép trên đoạn sông cạnh bến số {n} "
     "vào ban đêm, gây sạt lở bờ, đe dọa {m} hộ dân ven sông."),
    ("NONG_NGHIEP", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} kiến nghị nạo vét, kiên cố hóa kênh mương nội đồng N{m}; kênh bị "
     "bồi lắng, không đủ nước tưới cho vụ đông xuân."),
    ("NUOC_SACH", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri thôn {n}, {place} đề nghị đầu tư mở rộng công trình nước sạch sinh hoạt; hiện còn "
     "{m} hộ phải dùng nước giếng khoan nhiễm phèn."),
    ("DIEN", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri xóm {n}, {place} phản ánh điện yếu, thường xuyên mất điện vào buổi tối do trạm biến "
     "áp số {m} quá tải; đề nghị ngành điện nâng công suất trạm."),
    ("DIEN", "phan_anh", "cong_thong_tin",
     "Hộ gia đình bà {person}, thôn {n}, {place} phản ánh hóa đơn tiền điện tháng {d} tăng gấp "
     "{m} lần so với tháng trước dù mức sử dụng không đổi."),
    ("Y_TE", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri {place} kiến nghị bổ sung bác sĩ và trang thiết bị cho trạm y tế; trạm hiện chỉ "
     "có {d} y sĩ phục vụ hơn {m}00 hộ dân của {n} thôn."),
    ("Y_TE", "phan_anh", "cong_thong_tin",
     "Người dân tổ {n}, {place} phản ánh bếp ăn tập thể của công ty may số {m} không bảo đảm "
     "an toàn thực phẩm, nhiều công nhân bị ngộ độc."),
    ("BAO_HIEM", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri thôn {n}, {place} phản ánh {m} người lao động của doanh nghiệp gạch Tân {n} bị "
     "chậm đóng bảo hiểm xã hội nhiều tháng, không chốt được sổ."),
    ("GIAO_DUC", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri {place} kiến nghị xây thêm phòng học cho trường mầm non {school} điểm thôn {n}; "
     "hiện {m} cháu phải học ghép trong phòng tạm."),
    ("GIAO_DUC", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri {place} đề nghị bố trí đủ giáo viên tiếng Anh và tin học cho trường THPT số {n} "
     "của tỉnh; năm học này thiếu {d} giáo viên, {m} lớp phải ghép giờ."),
    ("CHINH_SACH_XA_HOI", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} đề nghị xem xét hồ sơ hưởng chế độ người có công của ông "
     "{person}; hồ sơ nộp đã {m} tháng chưa được giải quyết."),
    ("CHINH_SACH_XA_HOI", "tiep_cong_dan", "tiep_cong_dan",
     "Bà {person}, thôn {n}, {place} đề nghị được xét trợ cấp xã hội hằng tháng cho người "
     "khuyết tật nặng; gia đình thuộc hộ nghèo, có {d} người phụ thuộc."),
    ("TAI_CHINH", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri {place} đề nghị công khai việc sử dụng {m}0 triệu đồng đóng góp xây nhà văn hóa "
     "thôn {n}; người dân chưa được thông báo quyết toán."),
    ("CONG_THUONG", "phan_anh", "cong_thong_tin",
     "Người dân {place} phản ánh cửa hàng xăng dầu số {n} trên đường {street} bán thiếu "
     "{m}00 ml mỗi lần đổ 10 lít; đề nghị kiểm tra đo lường."),
    ("KHOA_HOC_CONG_NGHE", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} kiến nghị lắp thêm trạm phát sóng điện thoại; {m} hộ ở khu vực "
     "đồi phía tây không có sóng, học sinh không học trực tuyến được."),
    ("VAN_HOA_THE_THAO", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri thôn {n}, {place} kiến nghị hỗ trợ kinh phí sửa chữa nhà văn hóa thôn bị dột nát "
     "sau cơn bão số {d}; mái tôn hư hỏng khoảng {m}0 m²."),
    ("AN_NINH_TRAT_TU", "phan_anh", "tiep_cong_dan",
     "Người dân tổ dân phố {n}, {place} phản ánh nhóm thanh niên tụ tập đua xe trên đường "
     "{street} sau 23 giờ, gây mất trật tự; đề nghị tăng cường tuần tra."),
    ("AN_NINH_TRAT_TU", "to_cao", "don_thu",
     "Công dân tố cáo một nhóm cho vay lãi nặng {m}% mỗi tháng tại thôn {n}, {place}, đòi nợ "
     "bằng cách ném chất bẩn vào nhà người vay."),
    ("TU_PHAP", "phan_anh", "cong_thong_tin",
     "Ông {person}, tổ {n}, {place} phản ánh việc chứng thực bản sao hợp đồng tại bộ phận một "
     "cửa phải chờ {m} ngày, đề nghị rút ngắn thời gian."),
    ("BAO_HIEM", "kien_nghi", "ubmttq_tong_hop",
     "Cử tri {place} đề nghị Quốc hội sửa quy định về mức đóng bảo hiểm y tế hộ gia đình; "
     "gia đình có {d} thành viên ở thôn {n} phải đóng hơn {m} triệu đồng mỗi năm."),
    ("GIAO_THONG", "kien_nghi", "tiep_xuc_cu_tri",
     "Cử tri {place} kiến nghị lắp đèn tín hiệu giao thông tại nút giao km {n}+{m}50 Quốc lộ "
     "3{d}; đã xảy ra nhiều vụ tai nạn."),
)
# fmt: on


@dataclass(frozen=True)
class Generated:
    """One generated submission body and the category its template was written for."""

    body: dict[str, Any]
    category_hint: str


def _person(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def generate(count: int, *, seed: int = 7, start: int = 0) -> Iterator[Generated]:
    """`count` distinct submissions; index `start + i` makes each object unique."""
    rng = random.Random(seed * 1_000_003 + start)
    for i in range(start, start + count):
        category, kind, channel, template = TEMPLATES[i % len(TEMPLATES)]
        code, place = LOCALITIES[(i // len(TEMPLATES)) % len(LOCALITIES)]
        serial = i // (len(TEMPLATES) * len(LOCALITIES))
        text = template.format(
            place=place,
            n=serial + 1,
            m=rng.randint(2, 99),
            d=rng.randint(1, 9),
            street=rng.choice(STREETS),
            school=rng.choice(SCHOOLS),
            person=_person(rng),
        )
        body: dict[str, Any] = {
            "kind": kind,
            "channel": channel,
            "locality": code,
            "text": text,
        }
        if kind in ("khieu_nai", "to_cao", "tiep_cong_dan"):
            body["reporter"] = {
                "name": _person(rng),
                "phone": "09" + "".join(str(rng.randint(0, 9)) for _ in range(8)),
                "address": f"Thôn {serial + 1}, {place}",
            }
        yield Generated(body=body, category_hint=category)


def jsonl(bodies: list[dict[str, Any]]) -> bytes:
    """JSON lines of submission bodies (UTF-8, diacritics kept)."""
    return "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bodies).encode()
