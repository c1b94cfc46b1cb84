"""Text normalisation shared by the rule matcher and duplicate detection (pure functions).

`Normaliser.normalise` is the one place where abbreviations, teencode and spelling variants
are rewritten ("DT753" -> "đường tỉnh 753", "ko dc" -> "không được", "BHXH" -> "bảo hiểm
xã hội"); its table is data (`deploy/config/abbreviations.yaml`). `MatchText.of` applies it
before folding, so the rules and duplicate signatures only ever see the long forms.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from phoihop_common.config import ConfigError, default_config_dir, read_yaml
from phoihop_common.text import fold, nfc

ABBREVIATIONS_FILE = "abbreviations.yaml"

_FOLDED_WORD = re.compile(r"[0-9a-z]+")
_EXACT_WORD = re.compile(r"[0-9a-zà-ỹđ]+")
# combining tone marks (huyền, sắc, ngã, hỏi, nặng) -> a letter appended to the syllable, so
# old and new tone placement ("hoà" / "hòa", "thuỷ" / "thủy") compare equal
_TONES = {"\u0300": "f", "\u0301": "s", "\u0303": "x", "\u0309": "r", "\u0323": "j"}
# a text counts as typed with diacritics when at least this share of its words carry one
_DIACRITIC_SHARE = 0.2


class AbbreviationsError(ConfigError):
    """The abbreviations file is missing or invalid (message names the file and the entry)."""


class _Pattern(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    match: Annotated[str, Field(min_length=1)]
    to: str

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value


class Abbreviations(BaseModel):
    """The schema of `abbreviations.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=40)]
    patterns: tuple[_Pattern, ...] = ()
    # expansion -> the short forms it replaces (lower case, diacritics as typed)
    words: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("words")
    @classmethod
    def _one_expansion_per_form(
        cls, value: dict[str, tuple[str, ...]]
    ) -> dict[str, tuple[str, ...]]:
        seen: dict[tuple[str, ...], str] = {}
        for expansion, forms in value.items():
            if not _TOKEN.findall(expansion):
                raise ValueError(f"empty expansion {expansion!r}")
            for form in forms:
                key = _key(form)
                if not key:
                    raise ValueError(f"empty short form under {expansion!r}")
                if key in seen and seen[key] != expansion:
                    raise ValueError(f"{form!r} expands to both {seen[key]!r} and {expansion!r}")
                seen[key] = expansion
        return value


# words of a text as typed (any case): spans for rewriting
_TOKEN = re.compile(r"[0-9a-zà-ỹđ]+", re.IGNORECASE)
# words of a lower-cased text (spans)
WORDS = re.compile(r"[0-9a-zà-ỹđ]+")


def _lower(text: str) -> str:
    """Lower case of the same length (a letter whose lower case is longer is kept)."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    return lowered


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _TOKEN.findall(nfc(phrase)))


class Normaliser:
    """Rewrites abbreviations, teencode and spelling variants (see `abbreviations.yaml`).

    Two passes: the patterns (codes glued to numbers or signs; where two could apply at one
    place, the first in the file), then whole words and runs of words (the longest run
    first). Matching is on the lower-cased text, replacements are spliced into the text as
    typed and are lower case, so a name that follows a code stays a name; in a text typed
    without diacritics they are inserted folded, so the text keeps its style
    (`has_diacritics`). Cost: one scan for all patterns, one tokenisation for the words.
    """

    def __init__(self, table: Abbreviations) -> None:
        self.version = table.version
        self._patterns = tuple(
            (re.compile(p.match), nfc(p.to).lower(), fold(p.to)) for p in table.patterns
        )
        self._any_pattern = (
            re.compile("|".join(f"(?:{p.match})" for p in table.patterns))
            if table.patterns
            else None
        )
        words: dict[tuple[str, ...], tuple[str, str]] = {}
        for expansion, forms in table.words.items():
            marked = " ".join(_TOKEN.findall(nfc(expansion).lower()))
            plain = " ".join(_FOLDED_WORD.findall(fold(expansion)))
            for form in forms:
                words[_key(form)] = (marked, plain)
        self._words = words
        # first word -> the runs starting with it, longest first, as one expression
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for run in words:
            by_first.setdefault(run[0], []).append(run)
        self._runs = {
            first: re.compile(
                "(?:"
                + "|".join(
                    r"\s+".join(re.escape(w) for w in run)
                    for run in sorted(runs, key=lambda k: (-len(k), k))
                )
                + r")(?!\w)"
            )
            for first, runs in by_first.items()
        }

    @classmethod
    def empty(cls) -> Normaliser:
        """A normaliser that changes nothing."""
        return cls(Abbreviations(version="none"))

    def normalise(self, text: str, *, plain: bool | None = None) -> str:
        """The text with every known short form written out (NFC in, NFC out).

        `plain`: the text was typed without diacritics (decided here when not given).
        """
        text = nfc(text)
        return self.rewrite(text, _lower(text), None, plain)

    def rewrite(
        self,
        text: str,
        lowered: str,
        words: list[re.Match[str]] | None,
        plain: bool | None,
    ) -> str:
        """`normalise` of an NFC text, given its lower case (same length) and, when known,
        its words (`WORDS.finditer(lowered)`); returns `text` itself when nothing changes."""
        if self._any_pattern is not None and self._any_pattern.search(lowered):
            if plain is None:
                plain = not typed_with_diacritics(text)
            codes = self._pattern_matches(lowered, plain)
            if codes:
                text = self._splice(text, codes)
                lowered, words = _lower(text), None
        if not self._runs:
            return text
        if words is None:
            words = list(WORDS.finditer(lowered))
        starts = [m for m in words if m.group() in self._runs]
        if not starts:
            return text
        if plain is None:
            plain = not typed_with_diacritics(text)
        found: list[tuple[int, int, str]] = []
        last = 0
        for m in starts:
            if m.start() < last:
                continue
            run = self._runs[m.group()].match(lowered, m.start())
            if run is None:
                continue
            expansion = self._words.get(tuple(run.group().split()))
            if expansion is None:
                continue
            found.append((run.start(), run.end(), expansion[1] if plain else expansion[0]))
            last = run.end()
        return self._splice(text, found)

    def _pattern_matches(self, lowered: str, plain: bool) -> list[tuple[int, int, str]]:
        assert self._any_pattern is not None
        found = []
        for m in self._any_pattern.finditer(lowered):
            for pattern, marked, folded in self._patterns:
                own = pattern.match(lowered, m.start())
                if own is not None and own.end() == m.end():
                    found.append((m.start(), m.end(), own.expand(folded if plain else marked)))
                    break
        return found

    @staticmethod
    def _splice(text: str, found: list[tuple[int, int, str]]) -> str:
        if not found:
            return text
        out = []
        last = 0
        for start, end, replacement in found:
            out.append(text[last:start])
            out.append(replacement)
            last = end
        out.append(text[last:])
        return "".join(out)


def load_abbreviations(path: Path) -> Normaliser:
    """Parse and validate an abbreviations file; errors name the file and the entry."""
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise AbbreviationsError(f"{path}: expected a mapping with version, patterns and words")
    try:
        return Normaliser(Abbreviations.model_validate(doc))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        )
        raise AbbreviationsError(f"invalid abbreviations in {path}: {problems}") from exc


_DEFAULT: dict[str, Normaliser] = {}
_DEFAULT_LOCK = threading.Lock()


def default_normaliser() -> Normaliser:
    """The normaliser of `<config dir>/abbreviations.yaml` (loaded once per directory)."""
    path = default_config_dir() / ABBREVIATIONS_FILE
    key = str(path)
    found = _DEFAULT.get(key)
    if found is None:
        with _DEFAULT_LOCK:
            found = _DEFAULT.get(key)
            if found is None:
                found = load_abbreviations(path)
                _DEFAULT[key] = found
    return found


def typed_with_diacritics(text: str) -> bool:
    """True when at least a fifth of the text's words carry a diacritic (see `MatchText`)."""
    return _diacritic_share(_EXACT_WORD.findall(text.lower()))


def _diacritic_share(words: list[str]) -> bool:
    alpha = [w for w in words if not w.isdigit()]
    marked = sum(1 for w in alpha if not w.isascii() and fold_word(w) != w)
    return bool(alpha) and marked / len(alpha) >= _DIACRITIC_SHARE


@dataclass(frozen=True)
class MatchText:
    """One text in the forms the matcher looks at.

    `normalised` is the text with abbreviations and teencode written out (`Normaliser`);
    the other forms derive from it. `folded` is lower-case without diacritics, words
    separated by single spaces and padded with a space at both ends, so a phrase matches
    at word boundaries with a plain `in`.
    `exact` is the same with diacritics kept, each syllable's tone written as a trailing
    letter (`toned`), so tone placement never matters. A rule term written with diacritics
    is looked for in `exact` when the text has diacritics — "đình chỉ" is not "nghị định",
    "đường sát" is not "đường sắt" — and in `folded` when the text was typed without them,
    as on a web form (`has_diacritics` false).
    """

    original: str
    folded: str
    exact: str
    has_diacritics: bool
    normalised: str = ""

    @classmethod
    def of(cls, text: str, *, normaliser: Normaliser | None = None) -> MatchText:
        """Prepare a text for matching (`normaliser`: the deployment's, else the default).

        Whether the text has diacritics is decided on the text as typed (the written-out
        abbreviations follow its style).
        """
        text = nfc(text)
        lowered = _lower(text)
        words = list(WORDS.finditer(lowered))
        exact_words = [m.group() for m in words]
        marked = _diacritic_share(exact_words)
        norm = (normaliser or default_normaliser()).rewrite(text, lowered, words, not marked)
        if norm is not text:
            exact_words = _EXACT_WORD.findall(norm.lower())
        folded_words = _FOLDED_WORD.findall(fold_text(norm))
        return cls(
            original=text,
            folded=" " + " ".join(folded_words) + " ",
            exact=" " + " ".join(map(toned, exact_words)) + " ",
            has_diacritics=marked,
            normalised=norm,
        )

    @cached_property
    def word_set(self) -> frozenset[str]:
        """The folded words (computed once)."""
        return frozenset(self.folded.split())

    def words(self) -> list[str]:
        """Folded words in order."""
        return self.folded.split()

    def exact_words(self) -> list[str]:
        """Toned words in order (diacritics kept)."""
        return self.exact.split()

    def written_words(self) -> list[str]:
        """Lower-case words as written, aligned with `exact_words` (for explanations)."""
        return _EXACT_WORD.findall((self.normalised or self.original).lower())


@lru_cache(maxsize=1 << 16)
def toned(word: str) -> str:
    """Canonical form of one lower-case word: 'hoà' and 'hòa' -> 'hoaf', 'chợ' -> 'chơj'."""
    tone = ""
    kept = []
    for ch in unicodedata.normalize("NFD", word):
        if ch in _TONES:
            tone = _TONES[ch]
        else:
            kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept)) + tone


class _StripMarks(dict[int, int | None]):
    """`str.translate` table deleting combining marks (category Mn), filled on demand."""

    def __missing__(self, key: int) -> int | None:
        value = None if unicodedata.category(chr(key)) == "Mn" else key
        self[key] = value
        return value


_STRIP_MARKS = _StripMarks()


def fold_text(text: str) -> str:
    """`phoihop_common.text.fold`, faster: same result (ASCII shortcut, cached mark table)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    return unicodedata.normalize("NFC", decomposed.translate(_STRIP_MARKS))


@lru_cache(maxsize=1 << 16)
def fold_word(word: str) -> str:
    """`fold` of one word, cached (a text's words repeat across texts)."""
    return fold_text(word)


def fold_phrase(phrase: str) -> str:
    """Folded, single-spaced form of a rule term: 'Đường liên thôn' -> 'duong lien thon'."""
    return " ".join(_FOLDED_WORD.findall(fold(phrase)))


def exact_phrase(phrase: str) -> str:
    """Toned, single-spaced form of a diacritic-sensitive rule term."""
    return " ".join(toned(w) for w in _EXACT_WORD.findall(nfc(phrase).lower()))


def contains(haystack: str, phrase: str) -> bool:
    """True when `phrase` (single-spaced words) occurs at word boundaries in a padded text."""
    return bool(phrase) and f" {phrase} " in haystack


class PhraseSet:
    """A fixed set of single-spaced phrases, all found in a text in one pass.

    `present(haystack)` is the subset of phrases `p` for which `contains(haystack, p)`:
    every word run that starts a known phrase is extended only while it stays a phrase
    prefix, so a text costs about one set lookup per word.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = frozenset(p for p in phrases if p)
        self._prefixes = frozenset(
            " ".join(words[:n])
            for words in (p.split(" ") for p in self.phrases)
            for n in range(1, len(words))
        )
        self._firsts = frozenset(p.split(" ", 1)[0] for p in self.phrases)

    def present(self, haystack: str) -> set[str]:
        """The phrases occurring at word boundaries in a padded, single-spaced text."""
        words = haystack.split(" ")
        phrases, prefixes, firsts = self.phrases, self._prefixes, self._firsts
        found: set[str] = set()
        for i, word in enumerate(words):
            if word not in firsts:
                continue
            run = word
            j = i
            while True:
                if run in phrases:
                    found.add(run)
                if run not in prefixes:
                    break
                j += 1
                if j >= len(words):
                    break
                run = f"{run} {words[j]}"
        return found


@dataclass(frozen=True)
class PassingMarkers:
    """Words after which a phrase names a place or a destination, not the matter itself.

    "đổ rác *cạnh* nhà văn hóa", "đường thôn *ra đến* đường tỉnh 761", "*đi* chợ về": the
    phrase after the marker is where something is or goes. `markers` are single-spaced
    phrases of one or two words compared with the haystack's own form (toned or folded);
    `blocked` are two-word runs ending with a marker word that are not markers ("xảy ra",
    "giám sát").
    """

    markers: frozenset[str]
    blocked: frozenset[str]

    @classmethod
    def of(cls, markers: Iterable[str], blocked: Iterable[str] = ()) -> PassingMarkers:
        """Markers and blocked runs, already in the haystack's form."""
        return cls(markers=frozenset(markers), blocked=frozenset(blocked))

    def all_in_passing(self, haystack: str, phrase: str) -> bool:
        """True when every occurrence of `phrase` in the padded haystack follows a marker."""
        if not self.markers:
            return False
        needle = f" {phrase} "
        start = haystack.find(needle)
        if start < 0:
            return False
        while start >= 0:
            if not self.before(haystack, start):
                return False
            start = haystack.find(needle, start + 1)
        return True

    def before(self, haystack: str, index: int) -> bool:
        """True when the words just before `index` of a padded haystack are a marker."""
        words = haystack[max(0, index - 32) : index + 1].split()
        if not words:
            return False
        if len(words) >= 2:
            two = f"{words[-2]} {words[-1]}"
            if two in self.markers:
                return True
            if two in self.blocked:
                return False
        return words[-1] in self.markers


NO_PASSING = PassingMarkers.of(())
