"""Comparing two signatures: similarity, hard vetoes (denunciations, communes, objects of
the same type with no value in common) and the evidence; the decision of a merge."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from phoihop_routing.duplicates.objects import _CLASS_TYPES, _WEAK_TYPES
from phoihop_routing.duplicates.signatures import (
    CROSS_COMMUNE_BUCKETS,
    DENUNCIATION,
    SIGNATURE_VERSION,
    VERSION,
    CaseSignature,
)
from phoihop_routing.duplicates.stats import DIFFERENT_CONCERN_WORDS, _Stats, _stats
from phoihop_routing.exceptions import RoutingError
from phoihop_schemas.events import Decision, Kind

# bonus per shared weak identifier (hamlet, alley, street), more when the concern is the same
WEAK_OBJECT = 0.05

WEAK_OBJECT_SAME_CONCERN = 0.1

# similarity factor when each text names its own object and they share no name
OTHER_OBJECTS = 0.6

# similarity factor when the only object both name is a long road (ĐT, QL) and each text
# names its own landmark on it: two sections, most likely two concerns
OTHER_SECTION = 0.6

# similarity factor when the two are classified in another category *and* level: with
# the bar across fields (0.45) a merge then needs 0.6 before it, a suggestion 0.33
OTHER_FIELD_AND_LEVEL = 0.75

# similarity factor when a complaint (khieu_nai) meets a report or a recommendation: a
# complaint contests a decision or act that touched the complainant, so a report about the
# same school or firm is most often another concern (a levy vs a fallen wall); merged only
# when much of the text is shared (0.55 before it), else at most a suggestion
COMPLAINT_AND_REPORT = 0.55
# the kinds a complaint is compared with as an equal: another complaint, and the
# complainant's visit to a citizen reception about it
_COMPLAINT_PEERS = frozenset({Kind.KHIEU_NAI.value, Kind.TIEP_CONG_DAN.value})

# identifier types of long roads, whose number alone does not say where on them
_ROUTE_TYPES = frozenset({"road"})


class DenunciationMergeError(RoutingError):
    """A merge that would join a denunciation with another kind or another commune."""


@dataclass(frozen=True)
class Comparison:
    """How two signatures compare: similarity, veto and the evidence for both."""

    similarity: float
    vetoed: bool
    evidence: tuple[str, ...] = field(default=())


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
    # a name cut short or lengthened ("chợ Mai" typed for "chợ Mai Xá", "Hưng Vượng" for
    # "Gỗ Hưng Vượng") is the same object: it is shared, and it vetoes nothing
    contained = _contained_ids(ids_a, ids_b)
    shared = (sa.idents & sb.idents) | cross | contained
    shared_ids = [i for i in shared if i.partition(":")[0] not in _CLASS_TYPES]
    strong_shared = any(i.partition(":")[0] not in _WEAK_TYPES for i in shared_ids)
    for kind in ids_a.keys() & ids_b.keys():
        if _vetoes(kind, ids_a, ids_b, contained):
            if kind in _WEAK_TYPES and (strong_shared or cross_commune):
                continue
            if not explain:
                return _VETOED
            kind = min(
                k for k in ids_a.keys() & ids_b.keys() if _vetoes(k, ids_a, ids_b, contained)
            )
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
        and not contained
    ):
        # each text names its own object (a bridge, a firm...) and no name is shared: most
        # likely two objects of the same commune, at most a suggestion
        score *= OTHER_OBJECTS
        if explain:
            evidence.append(
                f"each names another object: {'/'.join(_strong(a))} vs {'/'.join(_strong(b))}"
            )
    if a.category != b.category and a.level != b.level and a.level and b.level:
        # classified apart in both field and level: group members carry one label, so at
        # least one misreading, or (more often) two concerns at one place (a school's
        # teachers vs the alley to its gate): merged only when nearly the same text
        score *= OTHER_FIELD_AND_LEVEL
        if explain:
            evidence.append(
                f"other field and level: {a.category}/{a.level} vs {b.category}/{b.level}"
            )
    complaint = _complaint_and_report(a, b)
    if complaint is not None:
        score *= COMPLAINT_AND_REPORT
        if explain:
            evidence.append(complaint)
    sections = _other_sections(sa, sb, shared_ids)
    if sections is not None:
        # one provincial or national road, but each text places its concern at its own
        # landmark (a hamlet it crosses vs a school gate): most likely two sections and
        # two concerns of one long road, at most a suggestion
        score *= OTHER_SECTION
        if explain:
            evidence.append(f"other section of {sections}")
    if concepts == 0.0 and words < DIFFERENT_CONCERN_WORDS and a.concepts and b.concepts:
        # no field rule in common and little shared wording: another concern about the
        # same place (a water pipe vs a road to the same hamlets)
        if explain:
            evidence.append(f"different concern: {'/'.join(a.concepts)} vs {'/'.join(b.concepts)}")
        return Comparison(similarity=round(score, 4), vetoed=True, evidence=tuple(evidence))
    own_a, own_b = sa.field_concept_set & sa.concept_set, sb.field_concept_set & sb.concept_set
    if (
        a.category == b.category
        and own_a
        and own_b
        and own_a.isdisjoint(own_b)
        and words < DIFFERENT_CONCERN_WORDS
    ):
        # one field, but none of its specific rules in common and little shared wording:
        # another concern of the field at the same place (drugs vs gambling in one alley);
        # the rules they share belong to other fields (the alley where both happen)
        if explain:
            evidence.append(
                f"different concern in {a.category}: {'/'.join(sorted(own_a))} vs "
                f"{'/'.join(sorted(own_b))}"
            )
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


def _other_sections(sa: _Stats, sb: _Stats, shared_ids: list[str]) -> str | None:
    """The shared road, when a road (ĐT, QL) is the only object both name and each names a
    landmark of its own on it that the other does not (a hamlet, a school, a bridge)."""
    roads = sorted(i for i in shared_ids if i.partition(":")[0] in _ROUTE_TYPES)
    if not roads or len(roads) != len(shared_ids):
        return None
    own_a = _landmarks(sa) - set(shared_ids)
    own_b = _landmarks(sb) - set(shared_ids)
    if not own_a or not own_b:
        return None
    return f"{'/'.join(roads)}: {'/'.join(sorted(own_a))} vs {'/'.join(sorted(own_b))}"


def _landmarks(stats: _Stats) -> set[str]:
    return {i for i in stats.idents if i.partition(":")[0] not in _CLASS_TYPES | _ROUTE_TYPES}


def _vetoes(
    kind: str,
    ids_a: dict[str, set[str]],
    ids_b: dict[str, set[str]],
    contained: set[str] | frozenset[str] = frozenset(),
) -> bool:
    """Both name objects of this type, and no name is shared (nor one the other cut short)."""
    if not ids_a[kind].isdisjoint(ids_b[kind]):
        return False
    return not any(i.partition(":")[0] == kind for i in contained)


def _contained(a: str, b: str) -> bool:
    """One name's words are a contiguous run of the other's ("mai" in "mai xa"); never a
    number ("thôn 2" is not "thôn Đông 2")."""
    short, long = sorted((a.split(), b.split()), key=len)
    n = len(short)
    if any(c.isdigit() for w in short for c in w):
        return False
    return any(long[i : i + n] == short for i in range(len(long) - n + 1))


def _contained_ids(ids_a: dict[str, set[str]], ids_b: dict[str, set[str]]) -> set[str]:
    """Identifiers (the longer name) of one type where one name is the other cut short."""
    out: set[str] = set()
    for kind in ids_a.keys() & ids_b.keys():
        if kind in _CLASS_TYPES:
            continue
        for va in ids_a[kind] - ids_b[kind]:
            for vb in ids_b[kind] - ids_a[kind]:
                if _contained(va, vb):
                    out.add(f"{kind}:{max(va, vb, key=len)}")
    return out


def _named_in(names_of: _Stats, ids_of: _Stats) -> set[str]:
    """Identifiers of one signature whose value is a multi-word name of the other."""
    out: set[str] = set()
    for name in names_of.multi_names & ids_of.by_value.keys():
        out.update(ids_of.by_value[name])
    return out


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


def _complaint_and_report(a: CaseSignature, b: CaseSignature) -> str | None:
    """'complaint vs phan_anh' when one is a complaint and the other neither a complaint
    nor a citizen reception."""
    kinds = {a.kind, b.kind}
    if Kind.KHIEU_NAI.value in kinds and not kinds <= _COMPLAINT_PEERS and "" not in kinds:
        other = (kinds - {Kind.KHIEU_NAI.value}).pop()
        return f"complaint vs {other}"
    return None


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


def _cosine(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / math.sqrt(len(sa) * len(sb))


def _named_objects(names: Iterable[str], identifiers: Iterable[str]) -> set[str]:
    """Identifiers whose value is one of `names` (a multi-word name, not a bare number)."""
    wanted = {n for n in names if " " in n}
    return {i for i in identifiers if i.split(":", 1)[1] in wanted}


def _strong(sig: CaseSignature) -> list[str]:
    """Identifiers that name an object (not a hamlet or the like, not a class)."""
    return sorted(
        i for i in sig.identifiers if i.partition(":")[0] not in _WEAK_TYPES | _CLASS_TYPES
    )
