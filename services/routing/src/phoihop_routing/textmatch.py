"""Text normalisation shared by the rule matcher and duplicate detection (pure functions)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from phoihop_common.text import fold, nfc

_FOLDED_WORD = re.compile(r"[0-9a-z]+")
_EXACT_WORD = re.compile(r"[0-9a-zà-ỹđ]+")
# combining tone marks (huyền, sắc, ngã, hỏi, nặng) -> a letter appended to the syllable, so
# old and new tone placement ("hoà" / "hòa", "thuỷ" / "thủy") compare equal
_TONES = {"\u0300": "f", "\u0301": "s", "\u0303": "x", "\u0309": "r", "\u0323": "j"}
# a text counts as typed with diacritics when at least this share of its words carry one
_DIACRITIC_SHARE = 0.2


@dataclass(frozen=True)
class MatchText:
    """One text in the forms the matcher looks at.

    `folded` is lower-case without diacritics, words separated by single spaces and padded
    with a space at both ends, so a phrase matches at word boundaries with a plain `in`.
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

    @classmethod
    def of(cls, text: str) -> MatchText:
        """Prepare a text for matching."""
        text = nfc(text)
        lowered = text.lower()
        folded_words = _FOLDED_WORD.findall(fold_text(text))
        exact_words = _EXACT_WORD.findall(lowered)
        alpha = [w for w in exact_words if not w.isdigit()]
        marked = sum(1 for w in alpha if not w.isascii() and fold_word(w) != w)
        return cls(
            original=text,
            folded=" " + " ".join(folded_words) + " ",
            exact=" " + " ".join(map(toned, exact_words)) + " ",
            has_diacritics=bool(alpha) and marked / len(alpha) >= _DIACRITIC_SHARE,
        )

    def words(self) -> list[str]:
        """Folded words in order."""
        return self.folded.split()

    def exact_words(self) -> list[str]:
        """Toned words in order (diacritics kept)."""
        return self.exact.split()

    def written_words(self) -> list[str]:
        """Lower-case words as written, aligned with `exact_words` (for explanations)."""
        return _EXACT_WORD.findall(self.original.lower())


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
