"""Text normalisation shared by the rule matcher and duplicate detection (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from phoihop_common.text import fold, nfc

_FOLDED_WORD = re.compile(r"[0-9a-z]+")
_EXACT_WORD = re.compile(r"[0-9a-zà-ỹđ]+")


@dataclass(frozen=True)
class MatchText:
    """One text in the forms the matcher looks at.

    `folded` is lower-case without diacritics, words separated by single spaces and padded
    with a space at both ends, so a phrase matches at word boundaries with a plain `in`.
    `exact` is the same with diacritics kept (used for short words that diacritics
    disambiguate, e.g. "chợ" market vs "cho" for). `has_diacritics` is false for text typed
    without them, as on a web form.
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
        folded_words = _FOLDED_WORD.findall(fold(text))
        exact_words = _EXACT_WORD.findall(lowered)
        return cls(
            original=text,
            folded=" " + " ".join(folded_words) + " ",
            exact=" " + " ".join(exact_words) + " ",
            has_diacritics=fold(lowered) != lowered,
        )

    def words(self) -> list[str]:
        """Folded words in order."""
        return self.folded.split()


def fold_phrase(phrase: str) -> str:
    """Folded, single-spaced form of a rule term: 'Đường liên thôn' -> 'duong lien thon'."""
    return " ".join(_FOLDED_WORD.findall(fold(phrase)))


def exact_phrase(phrase: str) -> str:
    """Lower-case, single-spaced form of a diacritic-sensitive rule term."""
    return " ".join(_EXACT_WORD.findall(nfc(phrase).lower()))


def contains(haystack: str, phrase: str) -> bool:
    """True when `phrase` (single-spaced words) occurs at word boundaries in a padded text."""
    return bool(phrase) and f" {phrase} " in haystack
