"""Vietnamese text as data: NFC, and a folded form for matching with or without diacritics."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[0-9a-zà-ỹđ]+", re.IGNORECASE)


def nfc(text: str) -> str:
    """NFC-normalise (diacritics kept)."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Lower-case, strip diacritics (đ -> d): 'Đường liên thôn' -> 'duong lien thon'."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped)


def tokens(text: str) -> list[str]:
    """Folded word tokens."""
    return _WORD.findall(fold(text))
