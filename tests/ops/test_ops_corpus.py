"""The labelled corpora in `corpus/` pass their own checker (LABELING.md §9), and the checker
fails on a broken record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "corpus" / "check.py"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), *args], capture_output=True, text=True, timeout=60
    )


def test_every_corpus_passes_the_checks() -> None:
    files = sorted(str(p) for p in (ROOT / "corpus").glob("*.jsonl"))
    assert len(files) >= 2, files
    done = _check(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    written = _check(
        str(ROOT / "corpus/written.jsonl"), "--against", str(ROOT / "corpus/dev.jsonl")
    )
    assert written.returncode == 0, written.stdout + written.stderr


def test_a_wrong_agency_is_an_error(tmp_path: Path) -> None:
    lines = (ROOT / "corpus/written.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["expected"]["agency"] = "SO_KHONG_CO"
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]) + "\n", encoding="utf-8"
    )
    done = _check(str(broken))
    assert done.returncode == 1, done.stdout
    assert "SO_KHONG_CO" in done.stdout + done.stderr
