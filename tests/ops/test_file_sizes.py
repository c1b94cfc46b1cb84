"""The file-size check of `make lint` (tools/check_sizes.py): it passes on the project, fails
on a first-party file over 600 lines, and fails on an allowlist entry that is no longer
needed (so the allowlist only shrinks)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tools" / "check_sizes.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("check_sizes", CHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up
    spec.loader.exec_module(module)
    return module


def _allowlist() -> frozenset[str]:
    allowlist: frozenset[str] = _module().ALLOWLIST
    return allowlist


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _write(root: Path, rel: str, lines: int) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"x{n} = {n}\n" for n in range(lines)), encoding="utf-8")


def _tree(root: Path) -> None:
    """A checkout whose allowlisted files are still over the limit, the rest within it."""
    for rel in _allowlist():
        _write(root, rel, 700)
    _write(root, "schemas/src/phoihop_schemas/events.py", 600)
    _write(root, "services/ingest/src/phoihop_ingest/api.py", 10)
    _write(root, "bench/results/huge.py", 5000)  # output, not source
    _write(root, "services/ingest/tests/test_big.py", 5000)  # tests are not checked


def test_the_project_passes() -> None:
    result = _check()
    assert result.returncode == 0, result.stderr


def test_a_tree_within_the_limit_passes(tmp_path: Path) -> None:
    _tree(tmp_path)
    result = _check("--root", str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_file_of_601_lines_fails(tmp_path: Path) -> None:
    _tree(tmp_path)
    _write(tmp_path, "services/routing/src/phoihop_routing/big.py", 601)
    _write(tmp_path, "tools/also_big.py", 601)
    result = _check("--root", str(tmp_path))
    assert result.returncode == 1
    assert "services/routing/src/phoihop_routing/big.py: 601 lines" in result.stderr
    assert "tools/also_big.py: 601 lines" in result.stderr
    assert "events.py" not in result.stderr


def test_an_allowlisted_file_within_the_limit_fails(tmp_path: Path) -> None:
    module = _module()
    shrunk = "services/x/src/x/big.py"
    _write(tmp_path, shrunk, 601)
    assert module.check(tmp_path, allowlist=frozenset({shrunk})).ok  # still over: allowed
    _write(tmp_path, shrunk, 600)
    report = module.check(tmp_path, allowlist=frozenset({shrunk}))
    assert not report.ok
    assert report.stale == {shrunk: 600}
    (tmp_path / shrunk).unlink()
    assert module.check(tmp_path, allowlist=frozenset({shrunk})).stale == {shrunk: None}
