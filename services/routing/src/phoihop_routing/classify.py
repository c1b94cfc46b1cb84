"""Classification: category, level and agency of a recommendation, decided by data rules.

The rules live in `deploy/config/routing_rules.yaml` (see its header). One matcher
(`phoihop_routing.rules`) evaluates them on the folded text, so diacritics never matter.

- Category: every category rule that matches adds `weight` per matched term (capped); a light
  statistical component adds `vocabulary_weight` x a token score derived only from the rules'
  own terms and the categories' "covers" lists (it helps on wording the rules do not list,
  and alone it can only give a low-confidence guess). Thanks or nothing placeable -> KHAC.
- Text: abbreviations and teencode are written out first (`textmatch.Normaliser`, data in
  `deploy/config/abbreviations.yaml`), so "ko dc rut BHXH" reads like the formal wording.
- Words in passing: a category term right after a place or destination marker ("cạnh nhà
  văn hóa", "đi chợ", "ra đến đường tỉnh") counts a fraction (`in_passing` of the rules);
  a term inside a longer matched term of another rule does not count at all ("nước thải
  chăn nuôi" is pollution, not livestock).
- Level (LABELING §1): a trung_uong rule wins first; otherwise the level hints of the winning
  category's rules and the generic hints are weighed (xa vs tinh), default tinh.
- Agency (LABELING §2): derived from level and category, never chosen freely.
- Confidence in [0, 1] that the *agency* is right: the margin over the best category that
  would be routed elsewhere (at xa and trung_uong every field goes to the same body, so
  only the unplaced category competes there) and the amount of evidence; the engine sends
  anything under its threshold (default `triage_below` of the rules) to triage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from phoihop_common.config import Reference, commune_agency_code
from phoihop_routing.learned import MODEL_FILE, CategoryModel, Guess, ModelError
from phoihop_routing.rules import (
    RULES_FILE,
    CompiledRule,
    Hit,
    RoutingRules,
    Rule,
    RuleIndex,
    load_rules,
)
from phoihop_routing.textmatch import (
    ABBREVIATIONS_FILE,
    MatchText,
    Normaliser,
    exact_phrase,
    fold_phrase,
    load_abbreviations,
)
from phoihop_routing.vocabulary import vocabulary_weights
from phoihop_schemas.events import Decision, Kind, Level

TRIAGE_AGENCY = "TT_HDND"
# rules weighing less are generic hints, not concepts that paraphrases share
CONCEPT_WEIGHT = 1.5
FORWARDER_AGENCY = "DOAN_DBQH"
# rule ids of a decision the learned model took part in (`learned`)
MODEL_RULE = "model.category"
MODEL_AGREES = "model.agrees"


@dataclass(frozen=True)
class Classification:
    """The routing decision for one recommendation."""

    category: str
    level: Level
    agency: str
    decision: Decision
    # trung_uong because of a national rule or policy (not a national road): such a concern
    # is the same wherever it is raised, so duplicates are looked for province-wide
    national_scope: bool = False
    # tinh because of a provincial rule or programme (a support level, a council
    # resolution): the same concern in every commune, duplicates looked for province-wide
    province_scope: bool = False
    # ids of the category rules that matched: concepts shared by paraphrases
    concepts: tuple[str, ...] = field(default=())
    # the matched rules of the chosen category only: what the concern is about
    field_concepts: tuple[str, ...] = field(default=())
    # how the matter arrived: never changes the decision, but a denunciation (to_cao) is
    # kept apart by duplicate detection (`duplicates.compare`)
    kind: Kind | None = None
    # the prepared text (normalised, folded): `duplicates.signature` reuses it
    text: MatchText | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _LevelHits:
    """The level rules that matched one text: the trung_uong ones in file order, the other
    hints, and the national *objects* (a national road) named only in passing."""

    nationals: tuple[tuple[Rule, Hit], ...]
    hints: tuple[Hit, ...]
    province: bool  # a province_scope rule matched
    # ids of trung_uong object rules (not national_scope) whose every term follows a place
    # or destination marker: "đường liên thôn ... nối ra quốc lộ 34"
    in_passing: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        rules: tuple[CompiledRule, ...],
        hits: list[Hit | None],
        *,
        passing: dict[str, CompiledRule] | None = None,
        text: MatchText | None = None,
    ) -> _LevelHits:
        nationals = []
        hints = []
        province = False
        in_passing = set()
        for rule, hit in zip(rules, hits, strict=True):
            if hit is None:
                continue
            if rule.rule.level is Level.TRUNG_UONG:
                nationals.append((rule.rule, hit))
                marked = (passing or {}).get(rule.rule.id)
                if marked is not None and text is not None:
                    again = marked.match(text)
                    if again is not None and not again.full_terms:
                        in_passing.add(rule.rule.id)
            else:
                hints.append(hit)
                province = province or rule.rule.province_scope
        return cls(
            nationals=tuple(nationals),
            hints=tuple(hints),
            province=province,
            in_passing=frozenset(in_passing),
        )


@dataclass(frozen=True)
class _LevelDecision:
    level: Level
    rule: str
    confidence: float
    national: bool
    evidence: list[str]
    national_hit: Hit | None = None


@dataclass(frozen=True)
class _CategoryScore:
    category: str
    rules: float
    vocabulary: float
    hits: tuple[Hit, ...]
    tokens: tuple[str, ...]

    @property
    def total(self) -> float:
        return self.rules + self.vocabulary


class Classifier:
    """Applies the routing rules of one deployment."""

    def __init__(
        self,
        *,
        rules: RoutingRules,
        reference: Reference,
        normaliser: Normaliser | None = None,
        model: CategoryModel | None = None,
    ) -> None:
        rules.check_categories(known=(c.code for c in reference.categories))
        self.rules = rules
        self.reference = reference
        self.normaliser = normaliser or Normaliser.empty()
        # a second opinion for texts the rules are unsure of (`learned`), when configured
        self.model = model
        self._levels = tuple(CompiledRule.of(r) for r in rules.levels)
        self._categories = tuple(
            CompiledRule.of(r, in_passing=rules.in_passing) for r in rules.categories
        )
        self._level_index = RuleIndex(self._levels)
        # national objects (roads), with the in-passing markers: "ra quốc lộ 34" is where a
        # commune road leads, not the road asked about (`_level`)
        self._national_objects = {
            r.id: CompiledRule.of(r, in_passing=rules.in_passing)
            for r in rules.levels
            if r.level is Level.TRUNG_UONG and not r.national_scope
        }
        self._category_index = RuleIndex(self._categories)
        # rule id -> a matched term's name -> (folded, with diacritics) (`_longest_terms`)
        self._term_forms = {c.rule.id: _term_forms(c) for c in self._categories}
        self._vocabulary = vocabulary_weights(rules=rules, reference=reference, toned=False)
        self._vocabulary_toned = vocabulary_weights(rules=rules, reference=reference, toned=True)
        self._agency_codes = frozenset(reference.agency_codes)
        self._triage = _agency_with_role(reference, "triage", TRIAGE_AGENCY)
        self._forwarder = _agency_with_role(reference, "forwarder", FORWARDER_AGENCY)

    @classmethod
    def from_config(
        cls,
        *,
        reference: Reference,
        rules_path: Path | None = None,
        abbreviations_path: Path | None = None,
        model_path: Path | None = None,
    ) -> Classifier:
        """Load `<config_dir>/routing_rules.yaml`, `abbreviations.yaml` and, when present,
        `category_model.json` (or the paths given) and validate them."""
        config_dir = Path(reference.config_dir)
        path = rules_path or config_dir / RULES_FILE
        normaliser = load_abbreviations(abbreviations_path or config_dir / ABBREVIATIONS_FILE)
        classifier = cls(rules=load_rules(path), reference=reference, normaliser=normaliser)
        model_path = model_path or config_dir / MODEL_FILE
        if model_path.exists():
            model = CategoryModel.load(model_path)
            unknown = set(model.classes) - {c.code for c in reference.categories}
            if unknown:
                raise ModelError(f"{model_path}: unknown categories {sorted(unknown)}")
            classifier.model = model
        return classifier

    def prepare(self, text: str) -> MatchText:
        """The text as the rules and duplicate signatures see it (abbreviations written out)."""
        return MatchText.of(text, normaliser=self.normaliser)

    @property
    def version(self) -> str:
        """Version of the rules file."""
        return self.rules.version

    @property
    def triage_below(self) -> float:
        """Default confidence threshold under which an item goes to triage."""
        return self.rules.triage_below

    def classify(self, *, text: str, kind: Kind, locality: str) -> Classification:
        """Category, level and agency of a text (kind never changes them, LABELING §5)."""
        mt = self.prepare(text)
        scores = self._score_categories(mt)
        unplaced = self.rules.unplaced_category
        # exact ties are broken by category code so a replay decides the same way
        placed = sorted(
            (s for s in scores.values() if s.category != unplaced),
            key=lambda s: (-s.total, -s.rules, s.category),
        )
        khac = scores.get(unplaced)
        khac_score = khac.total if khac else 0.0
        best = placed[0] if placed else None
        # the level rules are matched once, and only when a field is placed
        level_hits = cache(
            lambda: _LevelHits.of(
                self._levels, self._level_index.hits(mt), passing=self._national_objects, text=mt
            )
        )

        def decide(
            score: _CategoryScore, *, guess: Guess | None = None, takes: bool = False
        ) -> Classification:
            return self._placed(
                score, placed=placed, khac_score=khac_score, scores=scores,
                level_hits=level_hits(), mt=mt, locality=locality, kind=kind,
                guess=guess, takes=takes,
            )  # fmt: skip

        if best is None or best.total < 1.0 or best.total <= khac_score:
            # nothing placed: the model may place it (not thanks or another unplaced rule)
            guess = self._second_opinion(mt) if khac is None or not khac.hits else None
            if guess is not None and guess.sure and guess.category != unplaced:
                return decide(_score_of(scores, guess.category), guess=guess, takes=True)
            return self._unplaced(khac=khac, best=best, locality=locality, kind=kind, mt=mt)
        found = decide(best)
        if found.decision.confidence >= self.triage_below:
            return found
        guess = self._second_opinion(mt)
        if guess is None or guess.category == unplaced:
            return found
        if guess.category == best.category or not guess.sure:
            return decide(best, guess=guess)
        return decide(_score_of(scores, guess.category), guess=guess, takes=True)

    def _second_opinion(self, mt: MatchText) -> Guess | None:
        """The learned model's guess, when the deployment has one."""
        return self.model.guess(mt.folded) if self.model is not None else None

    def _placed(
        self,
        best: _CategoryScore,
        *,
        placed: list[_CategoryScore],
        khac_score: float,
        scores: dict[str, _CategoryScore],
        level_hits: _LevelHits,
        mt: MatchText,
        locality: str,
        kind: Kind,
        guess: Guess | None = None,
        takes: bool = False,
    ) -> Classification:
        """The decision for `best`: the rules' winner, or the model's guess when it `takes`
        over; with `guess` the model was asked (it agrees, or is not sure enough to overrule)."""
        placed = [best, *(s for s in placed if s.category != best.category)]
        level = self._level(best, level_hits)
        agency = self.agency_for(category=best.category, level=level.level, locality=locality)
        level_conf = level.confidence
        level_evidence = level.evidence
        if level.level is Level.XA and agency == self._triage:
            level_evidence.append(f"unknown locality {locality!r}: no commune committee")
            level_conf = 0.0
        # the runner-up that matters is the best field routed to another body
        rival, rival_score = None, khac_score
        # at trung_uong every field goes to the NA delegation: only the unplaced competes
        for other in placed[1:] if level.national_hit is None else ():
            if other.total <= rival_score:
                break
            other_level = self._level(other, level_hits, explain=False).level
            if self.agency_for(category=other.category, level=other_level, locality=locality) != (
                agency
            ):
                rival, rival_score = other, other.total
                break
        # a national rule's request goes to the NA delegation whatever its field: the
        # national evidence also says it is a placeable matter
        amount = best.total + (level.national_hit.score if level.national_hit else 0.0)
        category_conf = _confidence(amount, rival_score)
        if best.rules == 0.0:
            category_conf = min(category_conf, 0.35)  # a statistical guess only
        top_rule = max(best.hits, key=lambda h: h.score).rule.id if best.hits else "vocabulary"
        evidence = [_describe(h) for h in sorted(best.hits, key=lambda h: -h.score)]
        if guess is not None and self.model is not None:
            evidence.insert(0, f"{guess.describe()} [{self.model.version}]")
            if takes:
                top_rule, category_conf = MODEL_RULE, _model_confidence(guess.margin)
            elif guess.category == best.category:
                # two judges that agree: the rules' evidence and the model's
                top_rule = f"{top_rule} + {MODEL_AGREES}"
                category_conf = 1.0 - (1.0 - category_conf) * (1.0 - min(1.0, 0.5 + guess.margin))
        if best.tokens:
            evidence.append(f"vocabulary +{best.vocabulary:.2f}: {', '.join(best.tokens[:6])}")
        evidence += level_evidence
        if len(placed) > 1 and placed[1].total > 0:
            evidence.append(f"runner-up {placed[1].category} {placed[1].total:.2f}")
        if rival is not None and rival is not placed[1]:
            evidence.append(f"routed elsewhere: {rival.category} {rival.total:.2f}")
        province = level.level is Level.TINH and level_hits.province
        if province:
            evidence.append("scope: a provincial rule or programme (province-wide)")
        return Classification(
            category=best.category,
            level=level.level,
            agency=agency,
            decision=Decision(
                rule=f"{top_rule} + {level.rule}",
                version=self.rules.version,
                evidence=tuple(evidence),
                confidence=round(min(category_conf, level_conf), 3),
            ),
            national_scope=level.national,
            province_scope=province,
            # what the text is about: specific rules with a term not merely in passing
            # (generic hints such as "công an", "ô nhiễm" are no concept of their own)
            concepts=tuple(
                sorted(
                    h.rule.id
                    for s in scores.values()
                    for h in s.hits
                    if h.full_terms and h.rule.weight >= CONCEPT_WEIGHT
                )
            ),
            field_concepts=tuple(sorted(h.rule.id for h in best.hits if h.full_terms))
            or tuple(sorted(h.rule.id for h in best.hits)),
            kind=kind,
            text=mt,
        )

    def agency_for(self, *, category: str, level: Level, locality: str) -> str:
        """Agency competent for a category at a level (LABELING §2)."""
        if category == self.rules.unplaced_category:
            return self._triage
        if level is Level.TRUNG_UONG:
            return self._forwarder
        if level is Level.XA:
            code = commune_agency_code(locality)
            return code if code in self._agency_codes else self._triage
        return self.reference.category(category).agency

    # ------------------------------------------------------------------ internals

    def _score_categories(self, mt: MatchText) -> dict[str, _CategoryScore]:
        hits: dict[str, list[Hit]] = defaultdict(list)
        found = [h for h in self._category_index.hits(mt) if h is not None]
        forms = self._term_forms if mt.has_diacritics else None
        for hit in _longest_terms(found, forms=forms):
            if hit.rule.category is not None:
                hits[hit.rule.category].append(hit)
        vocab_scores, vocab_tokens = self._vocabulary_scores(mt)
        weight = self.rules.vocabulary_weight
        out = {}
        for cat in set(hits) | set(vocab_scores):
            out[cat] = _CategoryScore(
                category=cat,
                rules=sum(h.score for h in hits.get(cat, [])),
                vocabulary=weight * vocab_scores.get(cat, 0.0),
                hits=tuple(hits.get(cat, [])),
                tokens=tuple(vocab_tokens.get(cat, [])),
            )
        return out

    def _vocabulary_scores(self, mt: MatchText) -> tuple[dict[str, float], dict[str, list[str]]]:
        scores: dict[str, float] = defaultdict(float)
        tokens: dict[str, list[str]] = defaultdict(list)
        # with diacritics, "đền" (temple) is not "đèn" (lamp) nor "đen" (black)
        if mt.has_diacritics:
            words = dict(zip(mt.exact_words(), mt.written_words(), strict=True))
            vocabulary = self._vocabulary_toned
        else:
            words = {w: w for w in mt.words()}
            vocabulary = self._vocabulary
        for word, written in words.items():
            for cat, w in vocabulary.get(word, {}).items():
                scores[cat] += w
                tokens[cat].append(written)
        return scores, tokens

    def _level(
        self, best: _CategoryScore, level_hits: _LevelHits, *, explain: bool = True
    ) -> _LevelDecision:
        # a commune-level object of the field (a hamlet road, an alley) asked about in full
        local = [h for h in best.hits if h.rule.level is Level.XA and h.full_terms]
        passed = []
        for rule, hit in level_hits.nationals:
            if local and rule.id in level_hits.in_passing:
                # "đường liên thôn ... nối ra quốc lộ 34": the national road is only where
                # the commune road leads (LABELING §1: hamlet roads are xa)
                passed.append(f"{_describe(hit)} only in passing: the matter is {local[0].rule.id}")
                continue
            return _LevelDecision(
                level=Level.TRUNG_UONG,
                rule=rule.id,
                confidence=0.9 if len(hit.terms) == 1 else 0.97,
                national=rule.national_scope,
                evidence=[_describe(hit)] if explain else [],
                national_hit=hit,
            )
        weighed: dict[Level, float] = defaultdict(float)
        evidence = passed if explain else []
        hints = [h for h in best.hits if h.rule.level is not None]
        for hit in (*hints, *level_hits.hints):
            assert hit.rule.level is not None
            weighed[hit.rule.level] += hit.score
            if explain:
                evidence.append(f"level {hit.rule.level.value} {_describe(hit)}")
        xa, tinh = weighed[Level.XA], weighed[Level.TINH]
        if xa == tinh == 0.0:
            default = self.rules.default_level
            return _LevelDecision(default, f"level.default.{default.value}", 0.75, False, evidence)
        level = Level.XA if xa > tinh else Level.TINH
        conf = max(xa, tinh) / (xa + tinh)
        return _LevelDecision(level, f"level.weighed.{level.value}", conf, False, evidence)

    def _unplaced(
        self,
        *,
        khac: _CategoryScore | None,
        best: _CategoryScore | None,
        locality: str,
        kind: Kind | None,
        mt: MatchText,
    ) -> Classification:
        code = self.rules.unplaced_category
        if khac is not None and khac.hits:
            rule = khac.hits[0].rule.id
            conf = _confidence(khac.total, best.total if best else 0.0)
            evidence = [_describe(h) for h in khac.hits]
        else:
            rule = "unplaced.no_evidence"
            conf = 0.5
            evidence = ["no category rule matched"]
        if best is not None and best.total > 0:
            evidence.append(f"best field {best.category} {best.total:.2f} (too weak)")
        return Classification(
            category=code,
            level=Level.TINH,
            agency=self.agency_for(category=code, level=Level.TINH, locality=locality),
            decision=Decision(
                rule=f"{rule} + level.unplaced",
                version=self.rules.version,
                evidence=tuple(evidence),
                confidence=round(conf, 3),
            ),
            kind=kind,
            text=mt,
        )


def _confidence(best: float, runner_up: float) -> float:
    """Margin over the runner-up times a saturating amount of evidence, in [0, 1]."""
    if best <= 0:
        return 0.0
    margin = best / (best + runner_up)
    strength = 1.0 - math.exp(-best / 3.0)
    return max(0.0, min(1.0, margin * strength))


def _score_of(scores: dict[str, _CategoryScore], category: str) -> _CategoryScore:
    """A category's score, or an empty one when no rule or word of it matched."""
    return scores.get(category) or _CategoryScore(category, 0, 0, (), ())


def _model_confidence(margin: float) -> float:
    """Confidence in a category the model alone chose: 0.65 at the bar (margin 0.3), <= 0.9."""
    return min(0.9, 0.5 + margin / 2)


def _describe(hit: Hit) -> str:
    """'gt.local_road +3: duong lien thon' — a rule and the terms it matched."""
    text = f"{hit.rule.id} +{hit.score:.3g}: {', '.join(hit.full_terms)}"
    if hit.passing:
        text += f"{'; ' if hit.full_terms else ''}in passing {', '.join(hit.passing)}"
    return text


def _term_forms(rule: CompiledRule) -> dict[str, tuple[str, str]]:
    """A rule's term names (folded terms, toned exact terms) -> (folded, toned) forms."""
    forms = {f: (f, t) for f, t in zip(rule.folded, rule.toned, strict=True)}
    for term in rule.rule.exact:
        forms[exact_phrase(term)] = (fold_phrase(term), exact_phrase(term))
    return forms


def _longest_terms(
    hits: list[Hit], *, forms: dict[str, dict[str, tuple[str, str]]] | None = None
) -> list[Hit]:
    """Drop a matched term that lies inside a longer matched term of another field.

    "nước thải chăn nuôi" (pollution) contains "chăn nuôi" (livestock): the longer phrase
    says what the words mean here, the shorter one does not count on its own; so does
    "trộm" (an exact term, theft) inside "xả trộm" (discharging secretly).
    `forms` (texts with diacritics; rule id -> term name -> (folded, toned)): two terms
    are compared with diacritics when both have them, so an exact term ("trộm", named by
    its toned form) meets the other rules' terms; a pattern's match is compared folded.
    """
    if len(hits) < 2:
        return hits

    def both(hit: Hit, term: str) -> tuple[str, str | None]:
        found = forms.get(hit.rule.id, {}).get(term) if forms is not None else None
        return (f" {found[0]} ", f" {found[1]} ") if found else (f" {term} ", None)

    def inside(term: tuple[str, str | None], other: tuple[str, str | None]) -> bool:
        if term[1] is not None and other[1] is not None:
            return term[1] in other[1] and term[1] != other[1]
        return term[0] in other[0] and term[0] != other[0]

    # every matched term in its forms, once
    terms = [(hit, [(t, both(hit, t)) for t in hit.terms]) for hit in hits]
    out = []
    for hit, own in terms:
        category = hit.rule.category
        others = [f for h, fs in terms if h.rule.category != category for _, f in fs]
        dropped = {t for t, f in own if any(inside(f, o) for o in others)}
        kept = hit.without(dropped) if dropped else hit
        if kept is not None:
            out.append(kept)
    return out


def _agency_with_role(reference: Reference, role: str, fallback: str) -> str:
    found = reference.with_role(role)
    return found[0].code if found else fallback
