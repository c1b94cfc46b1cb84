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

# the public API (`__all__`) and, for tests and tools, the private helpers of the former
# single module `duplicates.py`: every name it had is still importable from here
from phoihop_routing.duplicates.index import DuplicateIndex
from phoihop_routing.duplicates.objects import _BREAKS as _BREAKS
from phoihop_routing.duplicates.objects import _CLASS_TYPES as _CLASS_TYPES
from phoihop_routing.duplicates.objects import _DASHES as _DASHES
from phoihop_routing.duplicates.objects import _GAP_STOP as _GAP_STOP
from phoihop_routing.duplicates.objects import _GAP_STOP_PLAIN as _GAP_STOP_PLAIN
from phoihop_routing.duplicates.objects import _LEGAL_FORMS as _LEGAL_FORMS
from phoihop_routing.duplicates.objects import _MAX_GAP as _MAX_GAP
from phoihop_routing.duplicates.objects import _NOT_NAME_FIRST as _NOT_NAME_FIRST
from phoihop_routing.duplicates.objects import _NOT_NAME_PHRASES as _NOT_NAME_PHRASES
from phoihop_routing.duplicates.objects import _NOT_NAME_WORDS as _NOT_NAME_WORDS
from phoihop_routing.duplicates.objects import _NOT_NAME_WORDS_PLAIN as _NOT_NAME_WORDS_PLAIN
from phoihop_routing.duplicates.objects import _NUMBERED as _NUMBERED
from phoihop_routing.duplicates.objects import _NUMBERED_ROUTE as _NUMBERED_ROUTE
from phoihop_routing.duplicates.objects import _NUMBERED_TYPES as _NUMBERED_TYPES
from phoihop_routing.duplicates.objects import _OBJECT_HEADS as _OBJECT_HEADS
from phoihop_routing.duplicates.objects import _OBJECT_HEADS_PLAIN as _OBJECT_HEADS_PLAIN
from phoihop_routing.duplicates.objects import _OBJECT_PREFIXES as _OBJECT_PREFIXES
from phoihop_routing.duplicates.objects import _OBJECT_WORDS as _OBJECT_WORDS
from phoihop_routing.duplicates.objects import _OBJECT_WORDS_MARKED as _OBJECT_WORDS_MARKED
from phoihop_routing.duplicates.objects import _PERSON_TITLES as _PERSON_TITLES
from phoihop_routing.duplicates.objects import _PERSON_TITLES_PLAIN as _PERSON_TITLES_PLAIN
from phoihop_routing.duplicates.objects import _ROAD_PREFIX as _ROAD_PREFIX
from phoihop_routing.duplicates.objects import _WEAK_TYPES as _WEAK_TYPES
from phoihop_routing.duplicates.objects import _WORD as _WORD
from phoihop_routing.duplicates.objects import _capitalised_runs as _capitalised_runs
from phoihop_routing.duplicates.objects import _lower_not_name_phrases as _lower_not_name_phrases
from phoihop_routing.duplicates.objects import _object_type as _object_type
from phoihop_routing.duplicates.objects import _objects as _objects
from phoihop_routing.duplicates.objects import _route as _route
from phoihop_routing.duplicates.search import (
    CROSS_COMMUNE_MARGIN,
    MERGE,
    SUGGEST,
    SUGGEST_OTHER_FIELD,
    SUGGEST_VERDICT,
    SUGGESTIONS,
    THRESHOLD,
    THRESHOLD_OTHER_FIELD,
    Candidate,
    find_duplicate,
    is_dismissed,
    rank_candidates,
)
from phoihop_routing.duplicates.search import _best as _best
from phoihop_routing.duplicates.search import _margin as _margin
from phoihop_routing.duplicates.search import _ranked as _ranked
from phoihop_routing.duplicates.signatures import _DUP_STOPWORDS as _DUP_STOPWORDS
from phoihop_routing.duplicates.signatures import _NUMBER_UNITS as _NUMBER_UNITS
from phoihop_routing.duplicates.signatures import (
    CROSS_COMMUNE_BUCKETS,
    DENUNCIATION,
    NATIONAL_BUCKET,
    PROVINCE_BUCKET,
    ROAD_CATEGORY,
    SIGNATURE_VERSION,
    VERSION,
    CaseSignature,
    bucket_key,
    signature,
)
from phoihop_routing.duplicates.signatures import _content_word as _content_word
from phoihop_routing.duplicates.signatures import _locality_words as _locality_words
from phoihop_routing.duplicates.signatures import _numbers as _numbers
from phoihop_routing.duplicates.signatures import _pair_ok as _pair_ok
from phoihop_routing.duplicates.similarity import _VETOED as _VETOED
from phoihop_routing.duplicates.similarity import (
    OTHER_FIELD_AND_LEVEL,
    OTHER_OBJECTS,
    OTHER_SECTION,
    WEAK_OBJECT,
    WEAK_OBJECT_SAME_CONCERN,
    Comparison,
    DenunciationMergeError,
    compare,
    denunciation_veto,
    merge_decision,
)
from phoihop_routing.duplicates.similarity import _compare as _compare
from phoihop_routing.duplicates.similarity import _contained as _contained
from phoihop_routing.duplicates.similarity import _contained_ids as _contained_ids
from phoihop_routing.duplicates.similarity import _cosine as _cosine
from phoihop_routing.duplicates.similarity import _maybe_denunciation as _maybe_denunciation
from phoihop_routing.duplicates.similarity import _named_in as _named_in
from phoihop_routing.duplicates.similarity import _named_objects as _named_objects
from phoihop_routing.duplicates.similarity import _other_sections as _other_sections
from phoihop_routing.duplicates.similarity import _strong as _strong
from phoihop_routing.duplicates.similarity import _vetoes as _vetoes
from phoihop_routing.duplicates.stats import _BOUND_MARGIN as _BOUND_MARGIN
from phoihop_routing.duplicates.stats import _MAX_BONUS as _MAX_BONUS
from phoihop_routing.duplicates.stats import _MAX_CONCEPTS as _MAX_CONCEPTS
from phoihop_routing.duplicates.stats import _STATS_ATTR as _STATS_ATTR
from phoihop_routing.duplicates.stats import DIFFERENT_CONCERN_WORDS
from phoihop_routing.duplicates.stats import _bonus_keys as _bonus_keys
from phoihop_routing.duplicates.stats import _by_type as _by_type
from phoihop_routing.duplicates.stats import _index_keys as _index_keys
from phoihop_routing.duplicates.stats import _names_object as _names_object
from phoihop_routing.duplicates.stats import _pair_words_ok as _pair_words_ok
from phoihop_routing.duplicates.stats import _Probe as _Probe
from phoihop_routing.duplicates.stats import _Stats as _Stats
from phoihop_routing.duplicates.stats import _stats as _stats
from phoihop_routing.duplicates.stats import _values as _values

__all__ = [
    "CROSS_COMMUNE_BUCKETS",
    "CROSS_COMMUNE_MARGIN",
    "DENUNCIATION",
    "DIFFERENT_CONCERN_WORDS",
    "MERGE",
    "NATIONAL_BUCKET",
    "OTHER_FIELD_AND_LEVEL",
    "OTHER_OBJECTS",
    "OTHER_SECTION",
    "PROVINCE_BUCKET",
    "ROAD_CATEGORY",
    "SIGNATURE_VERSION",
    "SUGGEST",
    "SUGGESTIONS",
    "SUGGEST_OTHER_FIELD",
    "SUGGEST_VERDICT",
    "THRESHOLD",
    "THRESHOLD_OTHER_FIELD",
    "VERSION",
    "WEAK_OBJECT",
    "WEAK_OBJECT_SAME_CONCERN",
    "Candidate",
    "CaseSignature",
    "Comparison",
    "DenunciationMergeError",
    "DuplicateIndex",
    "bucket_key",
    "compare",
    "denunciation_veto",
    "find_duplicate",
    "is_dismissed",
    "merge_decision",
    "rank_candidates",
    "signature",
]
