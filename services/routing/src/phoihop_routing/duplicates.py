"""Duplicate detection: is a new recommendation the same concern about the same object as an
open case? (LABELING §6, hard negatives §7.)

Signature. Each recommendation is reduced to a small JSON-serialisable `CaseSignature`:
folded content words and word pairs (diacritics never matter, boilerplate dropped), the ids
of the category rules that matched (concepts shared by paraphrases: "giải tỏa" and "thu hồi
đất" both fire the land-administration rule), and the *object identifiers* the text names:
numbered ones (thôn 3, tổ dân phố 5, ngõ 12, ĐT.753 = "đường tỉnh 753", QL.37 = "Quốc lộ
37") and named ones (a capitalised name after an object word: cầu Khe Cạn, chợ X, Trường
THPT Y, mỏ đá Z, kênh N2, dự án ...), plus other proper-name n-grams.

Similarity. A weighted blend of set cosines over words, word pairs and concepts, plus a bonus
for each shared identifier or proper name. Hard constraints come first: two cases that name
objects of the same type with no value in common (another road number, hamlet, school,
market, bridge, project) never merge, whatever their wording; hamlet / alley numbers only
veto when no stronger object (road, bridge, named project...) is shared, because the voters'
own hamlet is often named next to the object. A different field or level makes merging
harder (higher bar), not impossible, so a duplicate classified slightly differently is
still found.

Denunciations (`to_cao`, Law on Denunciation 2018: the denouncer is kept secret) stand
apart: a `to_cao` merges only into another `to_cao` of the same commune, and nothing else
ever merges into a `to_cao` (a hard veto in `compare`, whatever the wording), so a merge
never links a denunciation with a case that other bodies or submitters can follow. Their
bucket is always their commune, never the national one.

Buckets and partitions. Candidates are compared only within a bucket: `local:<commune>`,
or `national` for a concern about a national rule or policy (the only kind of duplicate
that may come from several communes, §6; never a denunciation). The bucket depends on the
locality, the national-scope flag and whether it is a denunciation only - never on the
category, nor on xa vs tinh - so two members of a group classified differently still meet.
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any

from phoihop_common.text import fold, nfc
from phoihop_routing.classify import STOPWORDS, Classification
from phoihop_routing.exceptions import RoutingError
from phoihop_routing.textmatch import MatchText, fold_text, fold_word
from phoihop_schemas.events import Decision, Kind

SIGNATURE_VERSION = "dup.2026.10.3"
NATIONAL_BUCKET = "national"
DENUNCIATION = Kind.TO_CAO.value
# similarity needed to merge: same field and level, or not
THRESHOLD = 0.3
THRESHOLD_OTHER_FIELD = 0.45
# bonus per shared weak identifier (hamlet, alley, street), more when the concern is the same
WEAK_OBJECT = 0.05
WEAK_OBJECT_SAME_CONCERN = 0.1
# without a field rule in common, only this much shared wording still counts as one concern
DIFFERENT_CONCERN_WORDS = 0.4

# words that say nothing about the concern in a duplicate comparison (besides STOPWORDS)
_DUP_STOPWORDS = STOPWORDS | frozenset(
    """
    tiep tuc van dan lau roi lam xin mong muon kien nghi dong thoi yeu cau tat ca moi
    dem buoi sang toi chieu tren duoi gan xa cach hang nam khoang m km ha tan lan nhieu
    it dang phai di cung da nay do nen neu vi vay duoc tra loi ro bao gio dan bi trinh
    bay nop so pho dung khieu nai muc hien hanh
    """.split()  # noqa: SIM905
)

# object words (with diacritics) -> identifier type; the name that follows identifies it
_OBJECT_WORDS: tuple[tuple[str, str], ...] = (
    ("trường thpt", "school"),
    ("trường thcs", "school"),
    ("trường tiểu học", "school"),
    ("trường mầm non", "school"),
    ("trường", "school"),
    ("mỏ đá", "quarry"),
    ("mỏ", "quarry"),
    ("trạm biến áp", "substation"),
    ("trạm bơm", "pump"),
    ("nhà máy", "plant"),
    ("công ty", "plant"),
    ("nhà thuốc", "health"),
    ("quầy thuốc", "health"),
    ("hiệu thuốc", "health"),
    ("phòng khám", "health"),
    ("đại lý", "shop"),
    ("tạp hóa", "shop"),
    ("cửa hàng", "shop"),
    ("quán karaoke", "shop"),
    ("quán", "shop"),
    ("xưởng", "plant"),
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
# last words of object words, compared with diacritics ("chợ" is one, "cho" is not) or, in
# a text typed without them, folded
_OBJECT_HEADS = frozenset(w.split()[-1] for w, _ in _OBJECT_WORDS)
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
_ROAD_PREFIX = {"dt": "dt", "duong tinh": "dt", "tinh lo": "dt", "ql": "ql", "quoc lo": "ql"}
# identifier types that do not veto a merge when a stronger object is shared
_WEAK_TYPES = frozenset({"hamlet", "ward_group", "alley", "street", "km"})
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
_NOT_NAME_PHRASE_RE = re.compile(
    r"\b("
    + "|".join(sorted({*_NOT_NAME_PHRASES, *(fold(p) for p in _NOT_NAME_PHRASES)}, key=len)[::-1])
    + r")\b",
    re.IGNORECASE,
)
_PERSON_TITLES = frozenset(["ông", "bà", "anh", "chị", "em", "cháu", "cụ", "cô", "chú", "bác"])
_PERSON_TITLES_PLAIN = frozenset(["ong", "ba", "anh", "chi", "em", "chau"])
_WORD = re.compile(r"[0-9A-Za-zÀ-ỹĐđ]+|[.;:!?\n]")


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


def bucket_key(*, locality: str, classification: Classification) -> str:
    """Partition key under which duplicates of this case are searched (see module doc)."""
    if classification.national_scope and classification.kind is not Kind.TO_CAO:
        return NATIONAL_BUCKET
    return f"local:{locality}"


def signature(
    *, recommendation_id: str, text: str, locality: str, classification: Classification
) -> CaseSignature:
    """Reduce a recommendation to the features duplicate detection compares."""
    place_words = _locality_words(locality)
    mt = MatchText.of(text)
    identifiers, names, persons = _objects(
        original=mt.original, folded=mt.folded, place_words=place_words
    )
    words = [w for w in mt.words() if w not in place_words and w not in persons]
    content = [w for w in words if w not in _DUP_STOPWORDS and not w.isdigit() and len(w) > 1]
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
    denunciation = denunciation_veto(a, b)
    if denunciation is not None:
        return Comparison(similarity=0.0, vetoed=True, evidence=(denunciation,))
    evidence: list[str] = []
    ids_a, ids_b = _by_type(a.identifiers), _by_type(b.identifiers)
    # a name in one text that is an identified object in the other: "Gò Mít sang Bến Lội"
    # typed without "thôn" still names the hamlets "thôn Gò Mít", "thôn Bến Lội"
    cross = _named_objects(a.names, b.identifiers) | _named_objects(b.names, a.identifiers)
    shared_ids = sorted((set(a.identifiers) & set(b.identifiers)) | cross)
    strong_shared = any(i.split(":", 1)[0] not in _WEAK_TYPES for i in shared_ids)
    for kind in sorted(set(ids_a) & set(ids_b)):
        if ids_a[kind].isdisjoint(ids_b[kind]):
            if kind in _WEAK_TYPES and strong_shared:
                continue
            evidence.append(
                f"different {kind}: {'/'.join(sorted(ids_a[kind]))} vs "
                f"{'/'.join(sorted(ids_b[kind]))}"
            )
            return Comparison(similarity=0.0, vetoed=True, evidence=tuple(evidence))
    if a.bucket != NATIONAL_BUCKET and a.locality != b.locality:
        return Comparison(similarity=0.0, vetoed=True, evidence=("different commune",))
    words = _cosine(a.words, b.words)
    pairs = _cosine(a.pairs, b.pairs)
    concepts = _cosine(a.concepts, b.concepts)
    cross_names = {i.split(":", 1)[1] for i in cross}
    shared_names = sorted((set(a.names) & set(b.names)) - cross_names)
    shared_types = Counter(i.split(":", 1)[0] for i in shared_ids)
    # two hamlets (or alleys) named in both identify the object: the road between them
    strong = sum(n for t, n in shared_types.items() if t not in _WEAK_TYPES or n >= 2)
    weak = len(shared_ids) - strong
    # a hamlet named in both counts for more when the concern is the same (street lights of
    # thôn X) than when only the place is (a water pipe vs a road of thôn X)
    same_concern = bool(set(a.field_concepts) & set(b.field_concepts))
    weak_bonus = WEAK_OBJECT_SAME_CONCERN if same_concern else WEAK_OBJECT
    bonus = min(0.4, 0.25 * strong + weak_bonus * weak + 0.1 * len(shared_names))
    score = min(1.0, 0.45 * words + 0.25 * pairs + 0.15 * concepts + bonus)
    if concepts == 0.0 and words < DIFFERENT_CONCERN_WORDS and a.concepts and b.concepts:
        # no field rule in common and little shared wording: another concern about the
        # same place (a water pipe vs a road to the same hamlets)
        evidence.append(f"different concern: {'/'.join(a.concepts)} vs {'/'.join(b.concepts)}")
        return Comparison(similarity=round(score, 4), vetoed=True, evidence=tuple(evidence))
    common = sorted(set(a.words) & set(b.words))
    evidence.append(f"words {words:.2f}: {', '.join(common[:10])}")
    evidence.append(f"word pairs {pairs:.2f}, concepts {concepts:.2f}")
    if shared_ids:
        evidence.append(f"same objects: {', '.join(shared_ids)}")
    if shared_names:
        evidence.append(f"same names: {', '.join(shared_names)}")
    return Comparison(similarity=round(score, 4), vetoed=False, evidence=tuple(evidence))


def find_duplicate(
    *,
    candidate: CaseSignature,
    open_cases: Sequence[CaseSignature],
    threshold: float = THRESHOLD,
    threshold_other_field: float = THRESHOLD_OTHER_FIELD,
) -> tuple[CaseSignature, float] | None:
    """The most similar open case above the bar, with its similarity, or None.

    Cases whose similarity provably stays under the bar (`_Probe.bound`) are skipped
    without a full comparison; the answer is the same as comparing every case.
    """
    probe = _Probe(candidate)
    cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
    survivors = (case for case in open_cases if not probe.safe or probe.bound(case) >= cut)
    return _best(
        candidate=candidate,
        cases=survivors,
        threshold=threshold,
        threshold_other_field=threshold_other_field,
    )


def _best(
    *,
    candidate: CaseSignature,
    cases: Iterable[CaseSignature],
    threshold: float,
    threshold_other_field: float,
) -> tuple[CaseSignature, float] | None:
    """The full comparison over `cases`, in order (the first of equally similar ones wins)."""
    best: tuple[CaseSignature, float] | None = None
    for case in cases:
        if case.recommendation_id == candidate.recommendation_id:
            continue
        result = compare(candidate, case)
        if result.vetoed:
            continue
        same_field = case.category == candidate.category and case.level == candidate.level
        bar = threshold if same_field else threshold_other_field
        if result.similarity >= bar and (best is None or result.similarity > best[1]):
            best = (case, result.similarity)
    return best


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
    ) -> tuple[CaseSignature, float] | None:
        """`find_duplicate` over the indexed cases (same answer, fewer comparisons)."""
        probe = _Probe(candidate)
        cut = min(threshold, threshold_other_field) - _BOUND_MARGIN
        if not probe.safe or probe.unseen_bound() >= cut:
            return _best(
                candidate=candidate,
                cases=self.values(),
                threshold=threshold,
                threshold_other_field=threshold_other_field,
            )
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
        return _best(
            candidate=candidate,
            cases=(entries[s][0] for s in survivors),
            threshold=threshold,
            threshold_other_field=threshold_other_field,
        )

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
        version=SIGNATURE_VERSION,
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
    keys = {"#i" + i for i in sig.identifiers}
    values = (i.split(":", 1)[1] for i in sig.identifiers if ":" in i)
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


def _stats(sig: CaseSignature) -> _Stats:
    cached = sig.__dict__.get(_STATS_ATTR)
    if cached is None:
        words = frozenset(sig.words)
        pairs = set(sig.pairs)
        safe = all(_pair_words_ok(p, words) for p in pairs)
        cached = _Stats(
            n_words=len(words),
            n_pairs=len(pairs),
            keys=_bonus_keys(sig),
            kinds=tuple(sorted({i.partition(":")[0] for i in sig.identifiers})),
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
        self.kinds = frozenset(stats.kinds)
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


def _objects(
    *, original: str, folded: str, place_words: frozenset[str]
) -> tuple[set[str], set[str], set[str]]:
    """Typed object identifiers, other proper-name n-grams, and words of people's names."""
    identifiers: set[str] = set()
    for m in _NUMBERED.finditer(folded):
        kind = m.group("kind")
        value = _ROAD_PREFIX.get(kind, "") + m.group("num")
        identifiers.add(f"{_NUMBERED_TYPES[kind]}:{value}")
    names: set[str] = set()
    plain = fold_text(original) == original.lower()  # typed without diacritics
    persons: set[str] = set()
    for run, before in _capitalised_runs(nfc(original)):
        name = " ".join(run)
        titles = _PERSON_TITLES_PLAIN if plain else _PERSON_TITLES
        if before and before[-1] in titles:
            persons.update(run)  # the reporter differs between channels: not evidence
            continue
        object_type = _object_type(before, plain=plain)
        if object_type is not None:
            identifiers.add(f"{object_type}:{name}")
        elif not set(run) <= place_words:  # the commune's own name says nothing
            names.add(name)
    return identifiers, names, persons


def _object_type(before: list[str], *, plain: bool) -> str | None:
    """Type of the object word right before a name ('... cầu' -> bridge).

    With diacritics the object word must match exactly ("chợ", not "cho"); a text typed
    without them is compared folded.
    """
    tail = " " + " ".join(before[-6:])
    if plain:
        tail = fold_text(tail)
    for words, typ in _OBJECT_WORDS:
        word = fold_word(words) if plain else words
        if tail.endswith(" " + word):
            rest = fold_text(tail[: -len(word)]).rstrip()
            # "dự án Khu dân cư X" names a project, not a hamlet
            return "project" if rest.endswith(" du an") else typ
    return None


def _capitalised_runs(text: str) -> list[tuple[list[str], list[str]]]:
    """Runs of capitalised words (folded) with the lower-cased words just before each run.

    A capitalised word opening a sentence counts only when the next word is capitalised
    too and it is an object word ("Cầu Khe Cạn..." -> bridge "khe can").
    """
    plain = fold_text(text) == text.lower()
    not_names = _NOT_NAME_WORDS_PLAIN if plain else _NOT_NAME_WORDS
    text = _NOT_NAME_PHRASE_RE.sub(lambda m: m.group(0).lower(), text)
    tokens = _WORD.findall(text)
    runs: list[tuple[list[str], list[str]]] = []
    previous: list[str] = []
    current: list[str] = []
    before: list[str] = []
    sentence_start = True
    for tok in tokens:
        if tok in ".;:!?\n":
            if current:
                runs.append((current, before))
            current, previous, sentence_start = [], [], True
            continue
        folded = fold_word(tok)
        lowered = tok.lower()
        is_name = (tok[0].isupper() or (tok[0].isdigit() and current != [])) and (
            lowered not in not_names
        )
        if tok[0].isupper() and any(ch.isdigit() for ch in tok):
            is_name = True  # codes such as N2, B3
        heads = _OBJECT_HEADS_PLAIN if plain else _OBJECT_HEADS
        if (
            tok[0].isupper()
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
            current.append(folded)
        else:
            if current:
                runs.append((current, before))
                current = []
            previous.append(lowered)
    if current:
        runs.append((current, before))
    return runs
