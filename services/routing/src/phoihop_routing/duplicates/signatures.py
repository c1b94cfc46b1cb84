"""`CaseSignature`: what duplicate detection keeps about one case, and how a
recommendation is reduced to it (`signature`) and bucketed (`bucket_key`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from phoihop_common.text import nfc
from phoihop_routing.classify import Classification
from phoihop_routing.duplicates.objects import _CLASS_TYPES, _objects
from phoihop_routing.textmatch import MatchText
from phoihop_routing.vocabulary import STOPWORDS
from phoihop_schemas.events import Kind, Level

SIGNATURE_VERSION = "dup.2026.11.3"

# the version of the duplicate rules, in every merge / suggestion decision
VERSION = SIGNATURE_VERSION

NATIONAL_BUCKET = "national"

PROVINCE_BUCKET = "province"

# buckets whose members come from several communes
CROSS_COMMUNE_BUCKETS = frozenset({NATIONAL_BUCKET, PROVINCE_BUCKET})

DENUNCIATION = Kind.TO_CAO.value

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

ROAD_CATEGORY = "GIAO_THONG"

# numbers that identify a concern when followed by these words ("75 tuổi", "50 triệu")
_NUMBER_UNITS = frozenset({"tuoi", "trieu", "ty", "nghin", "phan"})


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


def _pair_ok(a: str, b: str) -> bool:
    return not (a in _DUP_STOPWORDS and b in _DUP_STOPWORDS) and not (a.isdigit() or b.isdigit())


def _locality_words(locality: str) -> frozenset[str]:
    """'xa-an-binh' -> {'an', 'binh'}: the commune's own name says nothing within its bucket."""
    parts = locality.split("-")
    if parts and parts[0] in {"xa", "phuong", "dac", "thi", "huyen"}:
        parts = parts[2:] if parts[0] in {"dac", "thi"} else parts[1:]
    return frozenset(parts)


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


def _content_word(word: str) -> bool:
    """A word `signature` keeps in `words` (when it is not a place or a person's name)."""
    return word not in _DUP_STOPWORDS and not word.isdigit() and len(word) > 1
