"""Duplicate detection: is a new recommendation the same concern about the same object as an
open case? (LABELING §6, hard negatives §7.)

Signature. Each recommendation is reduced to a small JSON-serialisable `CaseSignature`,
computed on the text as the classifier saw it (abbreviations and teencode written out,
`textmatch.Normaliser`: "QL279" is "quốc lộ 279", "TDP 4" is "tổ dân phố 4"): folded
content words and word pairs (diacritics never matter, boilerplate dropped), the ids
of the category rules that matched (concepts shared by paraphrases: "giải tỏa" and "thu hồi
đất" both fire the land-administration rule), and the *object identifiers* the text names:
numbered ones (thôn 3, tổ dân phố 5, ngõ 12, ĐT.753 = "đường tỉnh 753", QL.37 = "Quốc lộ
37") and named ones (a capitalised name after an object word: cầu Khe Cạn, chợ X, Trường
THPT Y, mỏ đá Z, kênh N2, cánh đồng Mả Giữa, dự án ...), plus other proper-name n-grams.
Firms and facilities (công ty, cơ sở, lò gạch, trại lợn, quán, cây xăng, nhà thuốc...) are
one type, `facility`: "cơ sở Phúc Thành" and "lò gạch Phúc Thành" are one object, "trại
lợn Minh Phát" and "Công ty Phú Gia" two. A road concern also carries its road class
(`roadclass:<level>`: commune road, ĐT, QL), never shared as evidence but vetoing a merge
of a commune road with a provincial or national one.

Similarity. A weighted blend of set cosines over words, word pairs and concepts, plus a bonus
for each shared identifier or proper name. Hard constraints come first: two cases that name
objects of the same type with no value in common (another road number, hamlet, school,
market, bridge, firm, field, project) never merge, whatever their wording; hamlet / alley
numbers only veto when no stronger object (road, bridge, named project...) is shared,
because the voters' own hamlet is often named next to the object (and never in the
province-wide buckets, where each commune names its own). A different field or level makes
merging harder (higher bar), not impossible, so a duplicate classified slightly differently
is still found.

Two bars. At or above `THRESHOLD` (`THRESHOLD_OTHER_FIELD` across fields) a candidate is
merged automatically; between `SUGGEST` (`SUGGEST_OTHER_FIELD`) and that bar it is only
suggested to a person (`rank_candidates`: the best open cases first, with similarity and
evidence). Pairs a person dismissed (`not_duplicate`, or a wrong merge undone) are never
merged nor suggested again: every search takes a `dismissed` set of id pairs.

Denunciations (`to_cao`, Law on Denunciation 2018: the denouncer is kept secret) stand
apart: a `to_cao` merges only into another `to_cao` of the same commune, and nothing else
ever merges into a `to_cao` (a hard veto in `compare`, whatever the wording), so a merge
never links a denunciation with a case that other bodies or submitters can follow. Their
bucket is always their commune, never the national one.

Buckets and partitions. Candidates are compared only within a bucket: `local:<commune>`,
`national` for a concern about a national rule or policy, or `province` for a concern
about a provincial rule or programme (a support level, a council resolution): the only
kinds of duplicate that may come from several communes (§6; never a denunciation). The
bucket depends on the locality, the scope flags and whether it is a denunciation only -
never on the category, nor on xa vs tinh - so two members of a group classified
differently still meet.
National roads stay local: a QL black spot is raised by the commune it crosses. The agents
repartition each classified candidate by bucket key through an internal topic (key =
bucket), so every candidate of a bucket is processed by the one worker owning that
partition, in order; a faust table keyed by bucket (changelog-backed, co-partitioned with
that topic) holds the signatures of the bucket's open cases. No cross-partition lookups or
locks are needed, adding partitions scales out, and a hot bucket (the national one) is a
single small list. Closing a case removes its signature from the bucket's entry.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any

from phoihop_common.text import fold, nfc
from phoihop_routing.classify import STOPWORDS, Classification
from phoihop_routing.exceptions import RoutingError
from phoihop_routing.textmatch import MatchText, fold_text, fold_word
from phoihop_schemas.events import Decision, Kind, Level

SIGNATURE_VERSION = "dup.2026.10.4"
# the version of the duplicate rules, in every merge / suggestion decision
VERSION = SIGNATURE_VERSION
NATIONAL_BUCKET = "national"
PROVINCE_BUCKET = "province"
# buckets whose members come from several communes
CROSS_COMMUNE_BUCKETS = frozenset({NATIONAL_BUCKET, PROVINCE_BUCKET})
DENUNCIATION = Kind.TO_CAO.value
# similarity needed to merge automatically: same field and level, or not
THRESHOLD = 0.3
THRESHOLD_OTHER_FIELD = 0.45
# similarity needed to be suggested to a person (below the merge bar)
SUGGEST = 0.15
SUGGEST_OTHER_FIELD = 0.25
# suggestions shown per new case
SUGGESTIONS = 3
# bonus per shared weak identifier (hamlet, alley, street), more when the concern is the same
WEAK_OBJECT = 0.05
WEAK_OBJECT_SAME_CONCERN = 0.1
# without a field rule in common, only this much shared wording still counts as one concern
DIFFERENT_CONCERN_WORDS = 0.4
# similarity factor when each text names its own object and they share no name
OTHER_OBJECTS = 0.6
# the merge bar is this much higher in a province-wide bucket (national, province): its
# concerns share their addressees and wording (Quốc hội, sửa luật) and come from everywhere
CROSS_COMMUNE_MARGIN = 0.05

# words that say nothing about the concern in a duplicate comparison (besides STOPWORDS)
_DUP_STOPWORDS = STOPWORDS | frozenset(
    """
    tiep tuc van dan lau roi lam xin mong muon kien nghi dong thoi yeu cau tat ca moi
    dem buoi sang toi chieu tren duoi gan xa cach hang nam khoang m km ha tan lan nhieu
    it dang phai di cung da nay do nen neu vi vay duoc tra loi ro bao gio dan bi trinh
    bay nop so pho dung khieu nai muc hien hanh
    quoc hoi chinh phu luat sua nghien cuu trung uong
    """.split()  # noqa: SIM905
)

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
ROAD_CATEGORY = "GIAO_THONG"
# numbers that identify a concern when followed by these words ("75 tuổi", "50 triệu")
_NUMBER_UNITS = frozenset({"tuoi", "trieu", "ty", "nghin", "phan"})
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
    {*_NOT_NAME_PHRASES, *(fold(p) for p in _NOT_NAME_PHRASES)}, key=lambda p: -len(p.split())
):
    _words = tuple(_phrase.split())
    _NOT_NAME_FIRST[_words[0]] = (*_NOT_NAME_FIRST.get(_words[0], ()), _words)
_PERSON_TITLES = frozenset(["ông", "bà", "anh", "chị", "em", "cháu", "cụ", "cô", "chú", "bác"])
_PERSON_TITLES_PLAIN = frozenset(["ong", "ba", "anh", "chi", "em", "chau"])
_WORD = re.compile(r"[0-9A-Za-zÀ-ỹĐđ]+|[.;:!?\n]|[,()/\"“”]|[–—-]")
# a dash continues a list of names of the same object word ("thôn Gò Mít – Bến Lội")
_DASHES = frozenset("–—-")
_BREAKS = frozenset(',()/"“”')


class DenunciationMergeError(RoutingError):
    """A merge that would join a denunciation with another kind or another commune."""


@dataclass(frozen=True)
class CaseSignature:
    """What duplicate detection keeps about one case (small, JSON-serialisable)."""

    recommendation_id: str
    locality: str = ""
    bucket: str = ""
    kind: str = ""  # "" (unknown, e.g. an older signature) never merges with a denunciation
    category: str = ""
    level: str = ""
    words: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    field_concepts: tuple[str, ...] = ()  # matched rules of the chosen category
    identifiers: tuple[str, ...] = ()  # "type:value", e.g. "road:dt753", "bridge:khe can"
    names: tuple[str, ...] = ()  # other proper-name n-grams, folded
    version: str = SIGNATURE_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "recommendation_id": self.recommendation_id,
            "locality": self.locality,
            "bucket": self.bucket,
            "kind": self.kind,
            "category": self.category,
            "level": self.level,
            "words": list(self.words),
            "pairs": list(self.pairs),
            "concepts": list(self.concepts),
            "field_concepts": list(self.field_concepts),
            "identifiers": list(self.identifiers),
            "names": list(self.names),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseSignature:
        """Inverse of to_dict (unknown keys ignored, lists back to tuples)."""
        known = set(cls.__dataclass_fields__)
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**values)


@dataclass(frozen=True)
class Comparison:
    """How two signatures compare: similarity, veto and the evidence for both."""

    similarity: float
    vetoed: bool
    evidence: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Candidate:
    """An open case ranked for a new one: merge it (`verdict` "merge") or suggest it."""

    case: CaseSignature
    similarity: float
    verdict: str  # MERGE or SUGGEST_VERDICT
    evidence: tuple[str, ...] = field(default=())

    @property
    def recommendation_id(self) -> str:
        """The open case's id."""
        return self.case.recommendation_id


MERGE = "merge"
SUGGEST_VERDICT = "suggest"


def bucket_key(*, locality: str, classification: Classification) -> str:
    """Partition key under which duplicates of this case are searched (see module doc)."""
    if classification.kind is Kind.TO_CAO:
        return f"local:{locality}"
    if classification.national_scope:
        return NATIONAL_BUCKET
    if classification.province_scope:
        return PROVINCE_BUCKET
    return f"local:{locality}"


def signature(
    *, recommendation_id: str, text: str, locality: str, classification: Classification
) -> CaseSignature:
    """Reduce a recommendation to the features duplicate detection compares.

    The text prepared by the classifier (`classification.text`) is reused when it is the
    same text; otherwise it is prepared with the default abbreviation table.
    """
    place_words = _locality_words(locality)
    prepared = classification.text
    mt = prepared if prepared is not None and prepared.original == nfc(text) else None
    if mt is None:
        mt = MatchText.of(text)
    identifiers, names, persons = _objects(
        original=mt.normalised or mt.original,
        folded=mt.folded,
        place_words=place_words,
        plain=not mt.has_diacritics,
    )
    if classification.category == ROAD_CATEGORY:
        identifiers.add(f"roadclass:{Level(classification.level).value}")
    words = [w for w in mt.words() if w not in place_words and w not in persons]
    # the words of names identify the object (identifiers, names), not the concern: they
    # count there, not in the wording
    values = (i.partition(":")[2] for i in identifiers if i.partition(":")[0] not in _CLASS_TYPES)
    named = {w for n in (*names, *values) for w in n.split()}
    numbers = _numbers(words)
    words = [w for w in words if w not in named]
    content = [w for w in words if w not in _DUP_STOPWORDS and not w.isdigit() and len(w) > 1]
    content += numbers
    pairs = {f"{a}_{b}" for a, b in pairwise(words) if _pair_ok(a, b)}
    return CaseSignature(
        recommendation_id=recommendation_id,
        locality=locality,
        bucket=bucket_key(locality=locality, classification=classification),
        kind=classification.kind.value if classification.kind is not None else "",
        category=classification.category,
        level=classification.level.value,
        words=tuple(sorted(set(content))),
        pairs=tuple(sorted(pairs)),
        concepts=tuple(sorted(set(classification.concepts))),
        field_concepts=tuple(sorted(set(classification.field_concepts))),
        identifiers=tuple(sorted(identifiers)),
        names=tuple(sorted(names)),
    )


def compare(a: CaseSignature, b: CaseSignature) -> Comparison:
    """Similarity of two signatures in [0, 1], with hard constraints on kind and identifiers."""
    return _compare(a, b, explain=True)


def _compare(a: CaseSignature, b: CaseSignature, *, explain: bool) -> Comparison:
    """`compare`; without `explain` the evidence is left out (searches only need the score)."""
    denunciation = denunciation_veto(a, b)
    if denunciation is not None:
        return Comparison(similarity=0.0, vetoed=True, evidence=(denunciation,))
    evidence: list[str] = []
    cross_commune = a.bucket in CROSS_COMMUNE_BUCKETS and a.bucket == b.bucket
    if not cross_commune and a.locality != b.locality:
        return Comparison(similarity=0.0, vetoed=True, evidence=("different commune",))
    sa, sb = _stats(a), _stats(b)
    ids_a, ids_b = sa.by_type, sb.by_type
    # a name in one text that is an identified object in the other: "Gò Mít sang Bến Lội"
    # typed without "thôn" still names the hamlets "thôn Gò Mít", "thôn Bến Lội"
    cross = _named_in(sa, sb) | _named_in(sb, sa)
    shared = (sa.idents & sb.idents) | cross
    shared_ids = [i for i in shared if i.partition(":")[0] not in _CLASS_TYPES]
    strong_shared = any(i.partition(":")[0] not in _WEAK_TYPES for i in shared_ids)
    for kind in ids_a.keys() & ids_b.keys():
        if ids_a[kind].isdisjoint(ids_b[kind]):
            if kind in _WEAK_TYPES and (strong_shared or cross_commune):
                continue
            if not explain:
                return _VETOED
            kind = min(k for k in ids_a.keys() & ids_b.keys() if _vetoes(k, ids_a, ids_b))
            evidence.append(
                f"different {kind}: {'/'.join(sorted(ids_a[kind]))} vs "
                f"{'/'.join(sorted(ids_b[kind]))}"
            )
            return Comparison(similarity=0.0, vetoed=True, evidence=tuple(evidence))
    words = _cosine(sa.word_set, sb.word_set)
    pairs = _cosine(sa.pair_set, sb.pair_set)
    concepts = _cosine(sa.concept_set, sb.concept_set)
    cross_names = {i.partition(":")[2] for i in cross}
    shared_names = (sa.name_set & sb.name_set) - cross_names
    shared_types: dict[str, int] = {}
    for ident in shared_ids:
        kind = ident.partition(":")[0]
        shared_types[kind] = shared_types.get(kind, 0) + 1
    # two hamlets (or alleys) named in both identify the object: the road between them
    strong = sum(n for t, n in shared_types.items() if t not in _WEAK_TYPES or n >= 2)
    weak = len(shared_ids) - strong
    # a hamlet named in both counts for more when the concern is the same (street lights of
    # thôn X) than when only the place is (a water pipe vs a road of thôn X)
    same_concern = not sa.field_concept_set.isdisjoint(sb.field_concept_set)
    weak_bonus = WEAK_OBJECT_SAME_CONCERN if same_concern else WEAK_OBJECT
    bonus = min(0.4, 0.25 * strong + weak_bonus * weak + 0.1 * len(shared_names))
    score = min(1.0, 0.45 * words + 0.25 * pairs + 0.15 * concepts + bonus)
    if (
        not cross_commune
        and sa.names_object
        and sb.names_object
        and sa.values.isdisjoint(sb.values)
    ):
        # each text names its own object (a bridge, a firm...) and no name is shared: most
        # likely two objects of the same commune, at most a suggestion
        score *= OTHER_OBJECTS
        if explain:
            evidence.append(
                f"each names another object: {'/'.join(_strong(a))} vs {'/'.join(_strong(b))}"
            )
    if concepts == 0.0 and words < DIFFERENT_CONCERN_WORDS and a.concepts and b.concepts:
        # no field rule in common and little shared wording: another concern about the
        # same place (a water pipe vs a road to the same hamlets)
        if explain:
            evidence.append(f"different concern: {'/'.join(a.concepts)} vs {'/'.join(b.concepts)}")
        return Comparison(similarity=round(score, 4), vetoed=True, evidence=tuple(evidence))
    if explain:
        common = sorted(sa.word_set & sb.word_set)
        evidence.append(f"words {words:.2f}: {', '.join(common[:10])}")
        evidence.append(f"word pairs {pairs:.2f}, concepts {concepts:.2f}")
        if shared_ids:
            evidence.append(f"same objects: {', '.join(sorted(shared_ids))}")
        if shared_names:
            evidence.append(f"same names: {', '.join(sorted(shared_names))}")
    return Comparison(similarity=round(score, 4), vetoed=False, evidence=tuple(evidence))


_VETOED = Comparison(similarity=0.0, vetoed=True)


def _vetoes(kind: str, ids_a: dict[str, set[str]], ids_b: dict[str, set[str]]) -> bool:
    return ids_a[kind].isdisjoint(ids_b[kind])


def _named_in(names_of: _Stats, ids_of: _Stats) -> set[str]:
    """Identifiers of one signature whose value is a multi-word name of the other."""
    out: set[str] = set()
    for name in names_of.multi_names & ids_of.by_value.keys():
        out.update(ids_of.by_value[name])
    return out


def find_duplicate(
    *,
    candidate: CaseSignature,
    open_cases: Sequence[CaseSignature],
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
    dismissed: Collection[tuple[str, str]] = (),
) -> tuple[CaseSignature, float] | None:
    """The most similar open case above the bar, with its similarity, or None.

    Cases whose similarity provably stays under the bar (`_Probe.bound`) are skipped
    without a full comparison; the answer is the same as comparing every case. A pair in
    `dismissed` (either order) is never merged.
    """
    probe = _Probe(candidate)
    cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
    survivors = (case for case in open_cases if not probe.safe or probe.bound(case) >= cut)
    return _best(
        candidate=candidate,
        cases=survivors,
        threshold=threshold,
        threshold_other_field=threshold_other_field,
        dismissed=dismissed,
    )


def rank_candidates(
    candidate: CaseSignature,
    members: Iterable[CaseSignature],
    *,
    limit: int = SUGGESTIONS,
    dismissed: Collection[tuple[str, str]] = (),
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
    suggest: float = SUGGEST,
    suggest_other_field: float = SUGGEST_OTHER_FIELD,
) -> list[Candidate]:
    """The best open cases for a new one, at most `limit`, best first.

    A case at or above the merge bar of its field (`threshold`, `threshold_other_field`)
    has verdict "merge"; those come first, most similar first (the first of them is what
    `find_duplicate` returns). Cases between the suggestion bar (`suggest`,
    `suggest_other_field`) and the merge bar follow with verdict "suggest", ranked by their
    similarity above their field's bar. Vetoed cases and `dismissed` pairs never appear.
    Each candidate carries the comparison's evidence.
    """
    probe = _Probe(candidate)
    cut = min(suggest, suggest_other_field, threshold, threshold_other_field) - _BOUND_MARGIN
    return _ranked(
        candidate=candidate,
        cases=(case for case in members if not probe.safe or probe.bound(case) >= cut),
        limit=limit,
        dismissed=dismissed,
        bars=(threshold, threshold_other_field, suggest, suggest_other_field),
    )


def _margin(candidate: CaseSignature, case: CaseSignature) -> float:
    """How much higher the merge bar is for this pair (province-wide buckets)."""
    cross = candidate.bucket in CROSS_COMMUNE_BUCKETS and case.bucket == candidate.bucket
    return CROSS_COMMUNE_MARGIN if cross else 0.0


def is_dismissed(a: str, b: str, dismissed: Collection[tuple[str, str]]) -> bool:
    """True when a person said `a` and `b` are not duplicates (pairs in either order)."""
    return bool(dismissed) and ((a, b) in dismissed or (b, a) in dismissed)


def _best(
    *,
    candidate: CaseSignature,
    cases: Iterable[CaseSignature],
    threshold: float,
    threshold_other_field: float,
    dismissed: Collection[tuple[str, str]] = (),
) -> tuple[CaseSignature, float] | None:
    """The full comparison over `cases`, in order (the first of equally similar ones wins)."""
    best: tuple[CaseSignature, float] | None = None
    for case in cases:
        if case.recommendation_id == candidate.recommendation_id:
            continue
        if is_dismissed(candidate.recommendation_id, case.recommendation_id, dismissed):
            continue
        result = _compare(candidate, case, explain=False)
        if result.vetoed:
            continue
        same_field = case.category == candidate.category and case.level == candidate.level
        bar = (threshold if same_field else threshold_other_field) + _margin(candidate, case)
        if result.similarity >= bar and (best is None or result.similarity > best[1]):
            best = (case, result.similarity)
    return best


def _ranked(
    *,
    candidate: CaseSignature,
    cases: Iterable[CaseSignature],
    limit: int,
    dismissed: Collection[tuple[str, str]],
    bars: tuple[float, float, float, float],
) -> list[Candidate]:
    """The full comparison over `cases` for `rank_candidates` (ties: the earlier case)."""
    threshold, threshold_other_field, suggest, suggest_other_field = bars
    merges: list[tuple[float, int, CaseSignature, float, str]] = []
    suggestions: list[tuple[float, int, CaseSignature, float, str]] = []
    for order, case in enumerate(cases):
        if case.recommendation_id == candidate.recommendation_id:
            continue
        if is_dismissed(candidate.recommendation_id, case.recommendation_id, dismissed):
            continue
        result = _compare(candidate, case, explain=False)
        if result.vetoed:
            continue
        same_field = case.category == candidate.category and case.level == candidate.level
        merge_bar = (threshold if same_field else threshold_other_field) + _margin(candidate, case)
        suggest_bar = suggest if same_field else suggest_other_field
        sim = result.similarity
        if sim >= merge_bar:
            bar_text = f"similarity {sim:.3f} >= merge bar {merge_bar:g}"
            merges.append((-sim, order, case, sim, bar_text))
        elif sim >= suggest_bar:
            bar_text = f"similarity {sim:.3f}: suggested (>= {suggest_bar:g}, < {merge_bar:g})"
            suggestions.append((-(sim - merge_bar), order, case, sim, bar_text))
    chosen = [(t, MERGE) for t in sorted(merges, key=lambda t: t[:2])]
    chosen += [(t, SUGGEST_VERDICT) for t in sorted(suggestions, key=lambda t: t[:2])]
    # the evidence only for the candidates returned
    return [
        Candidate(case, sim, verdict, (bar_text, *compare(candidate, case).evidence))
        for (_, _, case, sim, bar_text), verdict in chosen[: max(0, limit)]
    ]


class DuplicateIndex:
    """The open cases of one bucket, indexed so that `find` compares only plausible ones.

    `find(candidate=...)` returns exactly what `find_duplicate(candidate=...,
    open_cases=list(index.values()))` returns: an inverted index (content word or
    identifier / name -> cases) counts the words each case shares with the candidate, and
    a case whose similarity bound (`_Probe.bound`) stays under the bar is not compared. A
    case sharing nothing with the candidate is never looked at. Memory: one list entry
    per content word and identifier of each case, plus the signatures themselves.
    Iteration order is insertion order; re-adding a present id replaces it in place
    (like a dict).
    """

    def __init__(self, cases: Iterable[CaseSignature] = ()) -> None:
        self._serial_of: dict[str, int] = {}
        self._entries: dict[int, tuple[CaseSignature, _Stats]] = {}
        self._postings: dict[str, list[int]] = {}
        self._unsafe: set[int] = set()  # cases the bound does not apply to: always compared
        self._next = 0
        self._posted = 0
        self._stale = 0
        for case in cases:
            self.add(case)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, recommendation_id: object) -> bool:
        return recommendation_id in self._serial_of

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._serial_of))

    def get(self, recommendation_id: str) -> CaseSignature | None:
        """The signature of an open case, or None."""
        serial = self._serial_of.get(recommendation_id)
        return None if serial is None else self._entries[serial][0]

    def values(self) -> list[CaseSignature]:
        """The signatures, in insertion order."""
        return [sig for sig, _ in self._entries.values()]

    def add(self, case: CaseSignature) -> None:
        """Add (or replace in place) an open case."""
        serial = self._serial_of.get(case.recommendation_id)
        if serial is None:
            serial = self._next
            self._next += 1
            self._serial_of[case.recommendation_id] = serial
        stats = _stats(case)
        self._entries[serial] = (case, stats)
        if not stats.safe:
            self._unsafe.add(serial)
        else:
            self._unsafe.discard(serial)
        for key in (*set(case.words), *_index_keys(stats)):
            self._postings.setdefault(key, []).append(serial)
        self._posted += stats.n_words + len(stats.keys) + len(stats.kinds)

    def remove(self, recommendation_id: str) -> bool:
        """Remove an open case (its index entries are dropped lazily); False if absent."""
        serial = self._serial_of.pop(recommendation_id, None)
        if serial is None:
            return False
        _, stats = self._entries.pop(serial)
        self._unsafe.discard(serial)
        self._stale += stats.n_words + len(stats.keys) + len(stats.kinds)
        if self._stale > 1024 and self._stale * 2 > self._posted:
            self._compact()
        return True

    def find(
        self,
        *,
        candidate: CaseSignature,
        threshold: float = THRESHOLD,
        threshold_other_field: float = THRESHOLD_OTHER_FIELD,
        dismissed: Collection[tuple[str, str]] = (),
    ) -> tuple[CaseSignature, float] | None:
        """`find_duplicate` over the indexed cases (same answer, fewer comparisons)."""
        cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
        return _best(
            candidate=candidate,
            cases=self._plausible(candidate, cut),
            threshold=threshold,
            threshold_other_field=threshold_other_field,
            dismissed=dismissed,
        )

    def rank(
        self,
        *,
        candidate: CaseSignature,
        limit: int = SUGGESTIONS,
        dismissed: Collection[tuple[str, str]] = (),
        threshold: float = THRESHOLD,
        threshold_other_field: float = THRESHOLD_OTHER_FIELD,
        suggest: float = SUGGEST,
        suggest_other_field: float = SUGGEST_OTHER_FIELD,
    ) -> list[Candidate]:
        """`rank_candidates` over the indexed cases (same answer, fewer comparisons)."""
        cut = min(suggest, suggest_other_field, threshold, threshold_other_field) - _BOUND_MARGIN
        return _ranked(
            candidate=candidate,
            cases=self._plausible(candidate, cut),
            limit=limit,
            dismissed=dismissed,
            bars=(threshold, threshold_other_field, suggest, suggest_other_field),
        )

    def _plausible(self, candidate: CaseSignature, cut: float) -> Iterable[CaseSignature]:
        """The cases whose similarity to `candidate` may reach `cut`, in insertion order."""
        probe = _Probe(candidate)
        if not probe.safe or probe.unseen_bound() >= cut:
            return self.values()
        postings = self._postings
        shared = Counter(chain.from_iterable(postings.get(w, ()) for w in probe.words))
        keyed = set(chain.from_iterable(postings.get(k, ()) for k in probe.keys))
        # no shared key and an identifier type in common: vetoed (see `_Probe.bound_from`)
        vetoed = set(chain.from_iterable(postings.get("#k" + k, ()) for k in probe.kinds))
        vetoed -= keyed
        entries = self._entries
        survivors: list[int] = []
        for serial in (shared.keys() - vetoed) | keyed | self._unsafe:
            entry = entries.get(serial)
            if entry is None:
                continue  # removed
            stats = entry[1]
            if not stats.safe:
                survivors.append(serial)
                continue
            overlap = min(shared.get(serial, 0), stats.n_words, len(probe.words))
            if probe.bound_from(stats, overlap=overlap, keyed=serial in keyed) >= cut:
                survivors.append(serial)
        survivors.sort()
        return [entries[s][0] for s in survivors]

    def _compact(self) -> None:
        postings: dict[str, list[int]] = {}
        posted = 0
        for serial, (case, stats) in self._entries.items():
            for key in (*set(case.words), *_index_keys(stats)):
                postings.setdefault(key, []).append(serial)
            posted += stats.n_words + len(stats.keys) + len(stats.kinds)
        self._postings, self._posted, self._stale = postings, posted, 0


def merge_decision(*, candidate: CaseSignature, case: CaseSignature) -> Decision:
    """Explainable decision for a `Merged` event; a denunciation veto raises, never merges."""
    veto = denunciation_veto(candidate, case)
    if veto is not None:
        raise DenunciationMergeError(
            f"{candidate.recommendation_id} -> {case.recommendation_id}: {veto}"
        )
    result = compare(candidate, case)
    return Decision(
        rule="duplicates.similarity",
        version=VERSION,
        evidence=(f"duplicate of {case.recommendation_id}", *result.evidence),
        confidence=result.similarity,
    )


# ---------------------------------------------------------------------- internals

# similarity bounds are compared with the bar minus this (rounding of the similarity)
_BOUND_MARGIN = 1e-3
# the most each part of the similarity adds (see `compare`): concepts and the bonus
_MAX_CONCEPTS = 0.15
_MAX_BONUS = 0.4
_STATS_ATTR = "_dup_stats"


def denunciation_veto(a: CaseSignature, b: CaseSignature) -> str | None:
    """Why two signatures may never merge because one is (or may be) a denunciation."""
    if not (_maybe_denunciation(a) or _maybe_denunciation(b)):
        return None
    if not (a.kind == b.kind == DENUNCIATION):
        return f"denunciation never merges with another kind: {a.kind or '?'} vs {b.kind or '?'}"
    if a.locality != b.locality:
        return "denunciations of different communes"
    return None


def _maybe_denunciation(sig: CaseSignature) -> bool:
    # a signature written before kinds were recorded (an open case in the changelog) may be
    # one: nothing merges into it
    return sig.kind == DENUNCIATION or (not sig.kind and sig.version != SIGNATURE_VERSION)


def _index_keys(stats: _Stats) -> tuple[str, ...]:
    """Non-word keys of a case in a `DuplicateIndex`: bonus keys and identifier types."""
    return (*stats.keys, *("#k" + k for k in stats.kinds))


def _content_word(word: str) -> bool:
    """A word `signature` keeps in `words` (when it is not a place or a person's name)."""
    return word not in _DUP_STOPWORDS and not word.isdigit() and len(word) > 1


def _bonus_keys(sig: CaseSignature) -> tuple[str, ...]:
    """Index keys two signatures share whenever `compare` could give them a bonus.

    Shared identifier ("#i"), shared name ("#n"), or a multi-word name of one that is the
    value of an identifier of the other ("#v": multi-word identifier values and names).
    """
    idents = [i for i in sig.identifiers if i.partition(":")[0] not in _CLASS_TYPES]
    keys = {"#i" + i for i in idents}
    values = (i.split(":", 1)[1] for i in idents if ":" in i)
    keys.update("#v" + v for v in values if " " in v)
    keys.update("#n" + n for n in sig.names)
    keys.update("#v" + n for n in sig.names if " " in n)
    return tuple(sorted(keys))


@dataclass(frozen=True, slots=True)
class _Stats:
    """What the similarity bound needs of an open case (computed once per signature, small:
    no copy of the words is kept)."""

    n_words: int
    n_pairs: int
    keys: tuple[str, ...]
    kinds: tuple[str, ...]  # identifier types
    # every content word of a pair is among `words` (true of any `signature` output); the
    # pair bound relies on it, a case without it is always compared in full
    safe: bool
    # for `compare`: the signature's sets, identifiers by type and by value, whether an
    # object is named, the names carried
    word_set: frozenset[str] = frozenset()
    pair_set: frozenset[str] = frozenset()
    concept_set: frozenset[str] = frozenset()
    field_concept_set: frozenset[str] = frozenset()
    idents: frozenset[str] = frozenset()
    name_set: frozenset[str] = frozenset()
    multi_names: frozenset[str] = frozenset()  # names of several words
    by_type: dict[str, set[str]] = field(default_factory=dict)
    by_value: dict[str, tuple[str, ...]] = field(default_factory=dict)
    names_object: bool = False
    values: frozenset[str] = frozenset()


def _stats(sig: CaseSignature) -> _Stats:
    cached = sig.__dict__.get(_STATS_ATTR)
    if cached is None:
        words = frozenset(sig.words)
        pairs = set(sig.pairs)
        safe = all(_pair_words_ok(p, words) for p in pairs)
        by_value: dict[str, list[str]] = {}
        for ident in sig.identifiers:
            by_value.setdefault(ident.partition(":")[2], []).append(ident)
        cached = _Stats(
            word_set=words,
            pair_set=frozenset(pairs),
            concept_set=frozenset(sig.concepts),
            field_concept_set=frozenset(sig.field_concepts),
            idents=frozenset(sig.identifiers),
            name_set=frozenset(sig.names),
            multi_names=frozenset(n for n in sig.names if " " in n),
            by_value={v: tuple(i) for v, i in by_value.items()},
            by_type=_by_type(sig.identifiers),
            names_object=_names_object(sig),
            values=frozenset(_values(sig)),
            n_words=len(words),
            n_pairs=len(pairs),
            keys=_bonus_keys(sig),
            kinds=tuple(
                sorted(
                    {i.partition(":")[0] for i in sig.identifiers} - _CLASS_TYPES,
                )
            ),
            safe=safe,
        )
        object.__setattr__(sig, _STATS_ATTR, cached)  # a cache, not a field: eq/repr unchanged
    return cached


def _pair_words_ok(pair: str, words: frozenset[str]) -> bool:
    parts = pair.split("_")
    return len(parts) == 2 and all(p in words for p in parts if _content_word(p))


class _Probe:
    """A candidate prepared for bounding its similarity to many open cases.

    `compare` gives at most 0.45 x words cosine + 0.25 x pairs cosine + 0.15 (concepts)
    + 0.4 (bonus, only with a shared identifier or name key). With `o` shared content
    words, the shared pairs are at most the candidate's pairs without a content word plus
    the pairs of its `o` most paired content words (a shared pair's content words are
    shared words). Two cases sharing no identifier but naming objects of the same type
    never merge.
    """

    def __init__(self, candidate: CaseSignature) -> None:
        stats = _stats(candidate)
        self.words = frozenset(candidate.words)
        self.keys = frozenset(stats.keys)
        # identifier types whose disjoint values veto a merge (`compare`): hamlets and
        # the like never do in a province-wide bucket
        kinds = frozenset(stats.kinds)
        if candidate.bucket in CROSS_COMMUNE_BUCKETS:
            kinds -= _WEAK_TYPES
        self.kinds = kinds
        self.safe = stats.safe
        self.n_words = stats.n_words
        self.n_pairs = stats.n_pairs
        per_word: Counter[str] = Counter()
        self.plain_pairs = 0  # pairs without a content word
        for pair in set(candidate.pairs):
            content = {p for p in pair.split("_") if _content_word(p)}
            if not content:
                self.plain_pairs += 1
            per_word.update(content)
        top = sorted(per_word.values(), reverse=True)
        self.top_pairs = [0]
        for n in top:
            self.top_pairs.append(self.top_pairs[-1] + n)

    def bound(self, case: CaseSignature) -> float:
        """Upper bound of the similarity to a case (inf when the bound does not apply)."""
        stats = _stats(case)
        if not stats.safe:
            return math.inf
        overlap = len(self.words.intersection(case.words))
        keyed = not self.keys.isdisjoint(stats.keys)
        return self.bound_from(stats, overlap=overlap, keyed=keyed)

    def bound_from(self, stats: _Stats, *, overlap: int, keyed: bool) -> float:
        """Upper bound given the number of shared content words and shared bonus keys.

        Without a shared key no identifier is shared, so an identifier type named by both
        vetoes the merge (see `compare`): the bound is then -inf.
        """
        if not keyed and not self.kinds.isdisjoint(stats.kinds):
            return -math.inf
        score = _MAX_CONCEPTS + (_MAX_BONUS if keyed else 0.0)
        if overlap and self.n_words and stats.n_words:
            score += 0.45 * overlap / math.sqrt(self.n_words * stats.n_words)
        if self.n_pairs and stats.n_pairs:
            top = self.top_pairs[min(overlap, len(self.top_pairs) - 1)]
            pairs = min(self.n_pairs, stats.n_pairs, self.plain_pairs + top)
            score += 0.25 * pairs / math.sqrt(self.n_pairs * stats.n_pairs)
        return score

    def unseen_bound(self) -> float:
        """Upper bound for a case sharing no content word and no bonus key."""
        pairs = math.sqrt(self.plain_pairs / self.n_pairs) if self.n_pairs else 0.0
        return _MAX_CONCEPTS + 0.25 * pairs


def _cosine(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / math.sqrt(len(sa) * len(sb))


def _pair_ok(a: str, b: str) -> bool:
    return not (a in _DUP_STOPWORDS and b in _DUP_STOPWORDS) and not (a.isdigit() or b.isdigit())


def _locality_words(locality: str) -> frozenset[str]:
    """'xa-an-binh' -> {'an', 'binh'}: the commune's own name says nothing within its bucket."""
    parts = locality.split("-")
    if parts and parts[0] in {"xa", "phuong", "dac", "thi", "huyen"}:
        parts = parts[2:] if parts[0] in {"dac", "thi"} else parts[1:]
    return frozenset(parts)


def _named_objects(names: Iterable[str], identifiers: Iterable[str]) -> set[str]:
    """Identifiers whose value is one of `names` (a multi-word name, not a bare number)."""
    wanted = {n for n in names if " " in n}
    return {i for i in identifiers if i.split(":", 1)[1] in wanted}


def _by_type(identifiers: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ident in identifiers:
        kind, _, value = ident.partition(":")
        out.setdefault(kind, set()).add(value)
    return out


def _numbers(words: Sequence[str]) -> list[str]:
    """Numbers that identify a concern: years ("nam1995"), ages and amounts ("75tuoi")."""
    out = []
    for i, word in enumerate(words):
        if not word.isdigit():
            continue
        if len(word) == 4 and word[:2] in ("19", "20"):
            out.append(f"nam{word}")
        elif i + 1 < len(words) and words[i + 1] in _NUMBER_UNITS:
            out.append(f"{word}{words[i + 1]}")
    return out


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


def _strong(sig: CaseSignature) -> list[str]:
    """Identifiers that name an object (not a hamlet or the like, not a class)."""
    return sorted(
        i for i in sig.identifiers if i.partition(":")[0] not in _WEAK_TYPES | _CLASS_TYPES
    )


def _names_object(sig: CaseSignature) -> bool:
    return any(i.partition(":")[0] not in _WEAK_TYPES | _CLASS_TYPES for i in sig.identifiers)


def _values(sig: CaseSignature) -> set[str]:
    """The names a signature carries: identifier values (any type) and proper names."""
    out = {i.partition(":")[2] for i in sig.identifiers if i.partition(":")[0] not in _CLASS_TYPES}
    out.update(sig.names)
    return out


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
