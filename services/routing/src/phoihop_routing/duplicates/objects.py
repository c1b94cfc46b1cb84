"""The objects a text names: typed identifiers ("road:dt753", "bridge:khe can"), other
proper-name n-grams, and the words of people's names (see the package doc, "Signature").

Object words with the type of the object they introduce, numbered objects (thôn 3, ĐT.753),
roads between two hamlets, and the capitalised runs read as names.
"""

from __future__ import annotations

import re

from phoihop_common.text import fold, nfc
from phoihop_routing.textmatch import fold_text, fold_word

# object words (with diacritics) -> identifier type; the name that follows identifies it
_OBJECT_WORDS: tuple[tuple[str, str], ...] = (
    ("trường trung học phổ thông", "school"),
    ("trường trung học cơ sở", "school"),
    ("trung học phổ thông", "school"),
    ("trung học cơ sở", "school"),
    ("trường thpt", "school"),
    ("trường thcs", "school"),
    ("trường tiểu học", "school"),
    ("trường mầm non", "school"),
    ("trường", "school"),
    ("mỏ đá", "quarry"),
    ("mỏ", "quarry"),
    ("trạm biến áp", "substation"),
    ("trạm bơm", "pump"),
    # firms and the facilities they run: one type (two different names never merge)
    ("nhà máy", "facility"),
    ("công ty", "facility"),
    ("doanh nghiệp", "facility"),
    ("hợp tác xã", "facility"),
    ("cơ sở", "facility"),
    ("lò gạch", "facility"),
    ("lò vôi", "facility"),
    ("trang trại", "facility"),
    ("trại lợn", "facility"),
    ("trại heo", "facility"),
    ("trại gà", "facility"),
    ("trại", "facility"),
    ("nhà thuốc", "facility"),
    ("quầy thuốc", "facility"),
    ("hiệu thuốc", "facility"),
    ("phòng khám", "facility"),
    ("đại lý", "facility"),
    ("tạp hóa", "facility"),
    ("cửa hàng", "facility"),
    ("cây xăng", "facility"),
    ("quán karaoke", "facility"),
    ("quán", "facility"),
    ("xưởng", "facility"),
    ("dự án", "project"),
    ("khu đô thị mới", "project"),
    ("khu đô thị", "project"),
    ("khu công nghiệp", "project"),
    ("cụm công nghiệp", "project"),
    ("khu tái định cư", "project"),
    ("cầu", "bridge"),
    ("chợ", "market"),
    ("kênh", "canal"),
    ("hồ", "lake"),
    ("đập", "lake"),
    ("đèo", "pass"),
    ("dốc", "pass"),
    ("cảng", "port"),
    ("cánh đồng", "field"),
    ("nội đồng", "field"),
    ("xứ đồng", "field"),
    ("bệnh viện", "hospital"),
    ("đình", "relic"),
    ("chùa", "relic"),
    ("đền", "relic"),
    ("hang", "relic"),
    ("sông", "river"),
    ("suối", "river"),
    ("mương", "canal"),
    ("bãi rác", "dump"),
    ("nghĩa trang", "cemetery"),
    ("phố", "street"),
    ("đường", "street"),
    ("thôn", "hamlet"),
    ("xóm", "hamlet"),
    ("bản", "hamlet"),
    ("ấp", "hamlet"),
    ("khu dân cư", "hamlet"),
    ("tổ dân phố", "ward_group"),
    ("khu phố", "ward_group"),
)

# object words only recognised with diacritics: folded, they are other common words
# ("dong" is also đông, đóng, dòng)
_OBJECT_WORDS_MARKED = (("đồng", "field"),)

# last words of object words, compared with diacritics ("chợ" is one, "cho" is not) or, in
# a text typed without them, folded
_OBJECT_HEADS = frozenset(w.split()[-1] for w, _ in (*_OBJECT_WORDS, *_OBJECT_WORDS_MARKED))

_OBJECT_HEADS_PLAIN = frozenset(fold(w.split()[-1]) for w, _ in _OBJECT_WORDS)

# "trường thpt", "trạm biến": a capitalised word that continues an object word is not a name
_OBJECT_PREFIXES = frozenset(
    " ".join(w.split()[: i + 1]) for w, _ in _OBJECT_WORDS for i in range(1, len(w.split()))
)

_NUMBERED = re.compile(
    r"\b(?P<kind>thon|xom|ban|ap|doi|to dan pho|khu pho|ngo|hem|kiet|ngach|dt|duong tinh|"
    r"tinh lo|ql|quoc lo|kenh|tram bien ap|km)\s(?P<num>\d+[a-z]?)\b"
)

_NUMBERED_TYPES = {
    "thon": "hamlet",
    "xom": "hamlet",
    "ban": "hamlet",
    "ap": "hamlet",
    "doi": "hamlet",
    "to dan pho": "ward_group",
    "khu pho": "ward_group",
    "ngo": "alley",
    "hem": "alley",
    "kiet": "alley",
    "ngach": "alley",
    "dt": "road",
    "duong tinh": "road",
    "tinh lo": "road",
    "ql": "road",
    "quoc lo": "road",
    "kenh": "canal",
    "tram bien ap": "substation",
    "km": "km",
}

# a road between two numbered hamlets: "liên thôn 3 – thôn 4", "từ xóm 2 đến xóm 5"
_NUMBERED_ROUTE = re.compile(
    r"\b(?:lien|tu|noi) (?:thon|xom|ban) (?P<a>\d+[a-z]?) (?:(?:den|sang|toi|di|qua|voi) )?"
    r"(?:(?:thon|xom|ban) )?(?P<b>\d+[a-z]?)\b"
)

_ROAD_PREFIX = {"dt": "dt", "duong tinh": "dt", "tinh lo": "dt", "ql": "ql", "quoc lo": "ql"}

# identifier types that do not veto a merge when a stronger object is shared (nor ever in a
# province-wide bucket: each commune names its own hamlets)
_WEAK_TYPES = frozenset({"hamlet", "ward_group", "alley", "street", "km"})

# identifier types that classify rather than identify: a different value vetoes, the same
# value is no evidence (`roadclass`: the level of a road concern - commune road, ĐT, QL)
_CLASS_TYPES = frozenset({"roadclass"})

# words between an object word and its name ("xưởng gỗ Hưng Phát"): at most this many, and
# none of these (then the name is not the object's: "cầu qua Bến Lội", "trại của ông X")
_MAX_GAP = 2

_GAP_STOP = frozenset(
    """
    của ở tại cho với và từ đến qua sang ra vào trên dưới trong ngoài cạnh gần là có bị được
    thuộc đi về nối lên xuống tới giữa phía bên như theo thôn xóm bản xã phường tổ khu
    """.split()  # noqa: SIM905
)

_GAP_STOP_PLAIN = frozenset(fold_text(w) for w in _GAP_STOP) | {"o", "tai", "cho", "co"}

# legal forms inside firm names ("Công ty TNHH Phú Gia" is the firm "phu gia")
_LEGAL_FORMS = frozenset({"tnhh", "mtv", "cp", "jsc"})

# capitalised words and phrases that are not names of objects (compared with diacritics,
# so "Trần", "Phú", "An" stay names); the folded forms apply to text typed without them
_NOT_NAME_PHRASES = (
    "cử tri",
    "nhân dân",
    "mặt trận",
    "tổ quốc",
    "quốc hội",
    "chính phủ",
    "thủ tướng",
    "trung ương",
    "nhà nước",
    "công an",
    "điện lực",
    "đại biểu",
    "thường trực",
    "gia đình",
    "bệnh viện",
    "nhà máy",
    "dự án",
    "đề nghị",
    "ủy ban nhân dân",
    "hội đồng nhân dân",
    "bảo hiểm xã hội",
    "bảo hiểm y tế",
    "quốc lộ",
    "đường tỉnh",
    "khu đô thị mới",
    "khu đô thị",
    "khu dân cư",
    "tổ dân phố",
    "khu phố",
    "công ty",
    "doanh nghiệp",
    "hợp tác xã",
    "cơ sở",
    "nhà văn hóa",
    "trạm y tế",
    "cụm công nghiệp",
    "khu công nghiệp",
    "thông tư",
    "nghị định",
    "nghị quyết",
)

# a firm's line of business inside its name ("Công ty TNHH Bao bì Tân Hưng", "Công ty CP
# Gỗ Hưng Vượng"): the firm is "tân hưng", "hưng vượng" - another packaging firm of the
# same phường shares "Bao bì", not the name. Read with diacritics; folded only when of
# several words ("Go" typed plain is also "Gò", a hamlet's name)
_TRADE_PHRASES = (
    "bao bì",
    "gỗ",
    "may mặc",
    "dệt may",
    "da giày",
    "xây dựng",
    "thương mại",
    "dịch vụ",
    "đầu tư",
    "sản xuất",
    "thực phẩm",
    "vận tải",
    "khoáng sản",
    "vật liệu",
    "nhựa",
    "giấy",
    "thép",
    "xuất nhập khẩu",
    "chế biến",
    "nông sản",
    "thủy sản",
)

_NOT_NAME_WORDS = frozenset(
    """
    ubnd hđnd thpt thcs bhxh bhyt đt ql xã phường thôn xóm bản tỉnh huyện ông bà tôi anh
    chị em cháu trường cầu chợ kênh mỏ hồ trạm đường phố ngõ luật bộ sở các những nhiều
    một khi tại trên qua theo mong xin nay hiện đến cho đoàn đảng đặc khu nhà nghị đề
    kính chúng người dân đây đó này
    """.split()  # noqa: SIM905
)

_NOT_NAME_WORDS_PLAIN = frozenset(
    """
    xa phuong thon xom tinh huyen ong toi ubnd hdnd thpt thcs bhxh bhyt dt ql de truong
    cho kenh duong pho dan nguoi
    """.split()  # noqa: SIM905
)

# not-name phrases by their first word (lower case, with and without diacritics), the
# longest first: capitalised words that start one are lower-cased before names are read
_NOT_NAME_FIRST: dict[str, tuple[tuple[str, ...], ...]] = {}

for _phrase in sorted(
    {
        *_NOT_NAME_PHRASES,
        *(fold(p) for p in _NOT_NAME_PHRASES),
        *_TRADE_PHRASES,
        *(fold(p) for p in _TRADE_PHRASES if " " in p),
    },
    key=lambda p: -len(p.split()),
):
    _words = tuple(_phrase.split())
    _NOT_NAME_FIRST[_words[0]] = (*_NOT_NAME_FIRST.get(_words[0], ()), _words)

_PERSON_TITLES = frozenset(["ông", "bà", "anh", "chị", "em", "cháu", "cụ", "cô", "chú", "bác"])

_PERSON_TITLES_PLAIN = frozenset(["ong", "ba", "anh", "chi", "em", "chau"])

_WORD = re.compile(r"[0-9A-Za-zÀ-ỹĐđ]+|[.;:!?\n]|[,()/\"“”]|[–—-]")

# a dash continues a list of names of the same object word ("thôn Gò Mít – Bến Lội")
_DASHES = frozenset("–—-")

_BREAKS = frozenset(',()/"“”')


def _objects(
    *, original: str, folded: str, place_words: frozenset[str], plain: bool | None = None
) -> tuple[set[str], set[str], set[str]]:
    """Typed object identifiers, other proper-name n-grams, and words of people's names.

    `plain`: the text was typed without diacritics (object words are then compared folded).
    """
    identifiers: set[str] = set()
    for m in _NUMBERED.finditer(folded):
        kind = m.group("kind")
        value = _ROAD_PREFIX.get(kind, "") + m.group("num")
        identifiers.add(f"{_NUMBERED_TYPES[kind]}:{value}")
    for m in _NUMBERED_ROUTE.finditer(folded):
        identifiers.add(_route(m.group("a"), m.group("b")))
    names: set[str] = set()
    if plain is None:
        plain = fold_text(original) == original.lower()
    persons: set[str] = set()
    previous: tuple[str, str | None] = ("", None)  # the last run's name and type
    for run, before, dashed in _capitalised_runs(nfc(original), plain=plain):
        name = " ".join(run)
        titles = _PERSON_TITLES_PLAIN if plain else _PERSON_TITLES
        if before and before[-1] in titles:
            persons.update(run)  # the reporter differs between channels: not evidence
            continue
        object_type = _object_type(before, plain=plain)
        if object_type is not None:
            identifiers.add(f"{object_type}:{name}")
            if dashed and object_type == "hamlet" and previous[1] == "hamlet":
                # "liên thôn Nà Cọ – Khuổi Mường": the road between two hamlets
                identifiers.add(_route(previous[0], name))
        elif not set(run) <= place_words:  # the commune's own name says nothing
            names.add(name)
        previous = (name, object_type)
    return identifiers, names, persons


def _route(a: str, b: str) -> str:
    """The identifier of the road between two hamlets (either order)."""
    first, second = sorted((a, b))
    return f"route:{first}|{second}"


def _object_type(before: list[str], *, plain: bool) -> str | None:
    """Type of the object word right before a name ('... cầu' -> bridge).

    With diacritics the object word must match exactly ("chợ", not "cho"); a text typed
    without them is compared folded. Up to two plain words may stand between the object
    word and the name ("xưởng gỗ Hưng Phát", "cầu treo Nậm Pạt"), not a preposition or a
    verb of place ("cầu qua Bến Lội" names no bridge).
    """
    words = _OBJECT_WORDS if plain else (*_OBJECT_WORDS, *_OBJECT_WORDS_MARKED)
    tail_words = before[-6:]
    gap_stop = _GAP_STOP_PLAIN if plain else _GAP_STOP
    for gap in range(_MAX_GAP + 1):
        if gap and (len(tail_words) <= gap or tail_words[-gap] in gap_stop):
            return None
        tail = " " + " ".join(tail_words[: len(tail_words) - gap])
        if plain:
            tail = fold_text(tail)
        for word, typ in words:
            word = fold_word(word) if plain else word
            if tail.endswith(" " + word):
                rest = fold_text(tail[: -len(word)]).rstrip()
                # "dự án Khu dân cư X" names a project, not a hamlet
                return "project" if rest.endswith(" du an") else typ
    return None


def _lower_not_name_phrases(tokens: list[str]) -> None:
    """Lower-case, in place, capitalised runs of tokens that are a not-name phrase
    ("Ủy ban nhân dân", "Quốc hội", "Bảo hiểm xã hội"): institutions, not objects."""
    for i, tok in enumerate(tokens):
        if not tok[0].isupper():
            continue
        for phrase in _NOT_NAME_FIRST.get(tok.lower(), ()):
            n = len(phrase)
            if tuple(t.lower() for t in tokens[i : i + n]) == phrase:
                tokens[i : i + n] = list(phrase)
                break


def _capitalised_runs(text: str, *, plain: bool) -> list[tuple[list[str], list[str], bool]]:
    """Runs of capitalised words (folded) with the lower-cased words just before each run,
    and whether a dash joins the run to the one before.

    A capitalised word opening a sentence counts only when the next word is capitalised
    too and it is an object word ("Cầu Khe Cạn..." -> bridge "khe can"). A dash ends a
    run and the next one keeps the same object word ("thôn Gò Mít – Bến Lội": two hamlets);
    a comma or a bracket ends it. Words in capitals that are not codes ("MÁI DỘT", typed
    shouting) are no names, nor are legal forms ("TNHH").
    """
    not_names = _NOT_NAME_WORDS_PLAIN if plain else _NOT_NAME_WORDS
    heads = _OBJECT_HEADS_PLAIN if plain else _OBJECT_HEADS
    tokens = _WORD.findall(text)
    _lower_not_name_phrases(tokens)
    runs: list[tuple[list[str], list[str], bool]] = []
    previous: list[str] = []
    current: list[str] = []
    before: list[str] = []
    sentence_start = True
    dashed = False  # the current run follows a run and a dash
    after_dash = False  # the last token was a dash right after a run
    for tok in tokens:
        if tok in ".;:!?\n":
            if current:
                runs.append((current, before, dashed))
            current, previous, sentence_start, after_dash = [], [], True, False
            continue
        if tok in _DASHES or tok in _BREAKS:
            after_dash = tok in _DASHES and bool(current)
            if current:
                runs.append((current, before, dashed))
                current = []
            if tok in _BREAKS:
                previous.append(",")  # what follows is not named by the word before
            continue
        lowered = tok.lower()
        if lowered in _LEGAL_FORMS:
            continue
        folded = fold_word(tok)
        has_digit = not tok.isalpha()
        shouted = len(tok) > 1 and tok.isupper() and not has_digit
        is_name = (
            (tok[0].isupper() or (tok[0].isdigit() and current != []))
            and lowered not in not_names
            and not shouted
        )
        if tok[0].isupper() and has_digit:
            is_name = True  # codes such as N2, B3
        if (
            tok[0].isupper()
            and not shouted
            and not current
            and previous
            and previous[-1] in heads
            and f"{previous[-1]} {lowered}" not in _OBJECT_PREFIXES
        ):
            is_name = True  # "chợ Cầu Trắng": an object word inside a name
        if sentence_start and is_name and not current:
            # "Cầu Khe Cạn ...": keep the opening word as the object word, not as a name
            previous = [lowered]
            sentence_start = False
            continue
        sentence_start = False
        if is_name:
            if not current:
                before = previous[-6:]
                dashed = after_dash
            current.append(folded)
        else:
            if current:
                runs.append((current, before, dashed))
                current = []
            previous.append(lowered)
        after_dash = False
    if current:
        runs.append((current, before, dashed))
    return runs
