"""Fail when a first-party source file is longer than the limit (600 lines).

`python tools/check_sizes.py [--root DIR] [--limit N]` counts the lines of every `*.py`
file under `schemas/src`, `services/*/src`, `embedded/src`, `testkit/src`, `bench` and
`tools` (bench/results and hidden or cache directories left out) and lists, with exit status
1, each one over the limit: split it into cohesive modules (one concern each), re-exporting
from the original module the names other code imports from it.

`ALLOWLIST` names the files still to be split; they may stay over the limit for now. The
list only shrinks: an allowlisted file that is no longer over the limit (or is gone) fails
the check too, until it is removed from the list. Exit 0: every file is within the limit
or allowlisted and still over it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

LIMIT = 600
ROOT = Path(__file__).resolve().parents[1]
# Where first-party source lives, as globs relative to the repository root.
SOURCE_DIRS = ("schemas/src", "services/*/src", "embedded/src", "testkit/src", "bench", "tools")
# Generated output, virtual environments and caches are not source.
SKIPPED_DIRS = frozenset({"results", "__pycache__", "node_modules"})

# Files over the limit that are still to be split (each by the engineer who owns it).
# Remove a file from here once it is split: the check fails while a listed file is within
# the limit. Never add to this list; split the file instead.
ALLOWLIST: frozenset[str] = frozenset({})


@dataclass(frozen=True)
class Report:
    """What the check found: files over the limit, and allowlist entries no longer needed."""

    too_long: dict[str, int]  # path relative to the root -> lines, not allowlisted
    stale: dict[str, int | None]  # allowlisted path -> lines (None: the file is gone)

    @property
    def ok(self) -> bool:
        """Whether the check passes."""
        return not self.too_long and not self.stale


def count_lines(path: Path) -> int:
    """Lines of the file as `wc -l` counts them, plus a last line without a newline."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def source_files(root: Path) -> Iterator[Path]:
    """Every first-party `*.py` file under the root's source directories, sorted."""
    seen: set[Path] = set()
    for pattern in SOURCE_DIRS:
        for directory in sorted(root.glob(pattern)):
            if not directory.is_dir():
                continue
            for path in sorted(directory.rglob("*.py")):
                parts = path.relative_to(root).parts[:-1]
                if any(p in SKIPPED_DIRS or p.startswith(".") for p in parts):
                    continue
                if path.is_file() and path not in seen:
                    seen.add(path)
                    yield path


def check(root: Path, *, limit: int = LIMIT, allowlist: frozenset[str] = ALLOWLIST) -> Report:
    """Measure every source file under `root` against `limit` and the allowlist."""
    lines = {path.relative_to(root).as_posix(): count_lines(path) for path in source_files(root)}
    too_long = {rel: n for rel, n in lines.items() if n > limit and rel not in allowlist}
    stale = {rel: lines.get(rel) for rel in sorted(allowlist) if lines.get(rel, 0) <= limit}
    return Report(too_long=too_long, stale=stale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/check_sizes.py", description=__doc__)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="repository root (default: this checkout)"
    )
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"most lines (default {LIMIT})")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    limit: int = args.limit
    report = check(root, limit=limit)
    for rel, n in report.too_long.items():
        print(f"{rel}: {n} lines, over {limit}: split it into cohesive modules", file=sys.stderr)
    for rel, maybe_n in report.stale.items():
        state = "gone" if maybe_n is None else f"{maybe_n} lines, no longer over {limit}"
        print(f"{rel}: {state}: remove it from ALLOWLIST in tools/check_sizes.py", file=sys.stderr)
    if not report.ok:
        print(
            f"{len(report.too_long)} file(s) over {limit} lines, "
            f"{len(report.stale)} stale allowlist entry(ies)",
            file=sys.stderr,
        )
        return 1
    print(f"every source file within {limit} lines ({len(ALLOWLIST)} allowlisted, still over)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
