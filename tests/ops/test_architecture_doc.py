"""docs/architecture.md names real owners: every `phoihop_*` reference resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
REFERENCE = re.compile(r"`(phoihop_[a-z_]+(?:\.[A-Za-z_]+)*)")


def resolve(dotted: str) -> object:
    """Import the longest module prefix of `dotted`, then follow attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ModuleNotFoundError(dotted)


def test_every_owner_named_in_the_architecture_page_exists() -> None:
    names = sorted(set(REFERENCE.findall(DOC.read_text(encoding="utf-8"))))
    assert len(names) >= 30  # the page is the map: it names the owners
    missing = []
    for dotted in names:
        try:
            resolve(dotted)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{dotted}: {exc}")
    assert not missing, "\n".join(missing)
