"""The import-cycle check of `make lint` (tools/check_cycles.py): it fails on a cycle, even
one hidden behind an import inside a function or one between two packages, and passes on
the project's own packages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tools" / "check_cycles.py"


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))


def _check(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(CHECK), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cycle_behind_an_import_inside_a_function_fails(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "cyclic",
        {
            "app": """
                def create_app():
                    from cyclic.api import router

                    return router
            """,
            "api": """
                from cyclic.app import create_app

                router = [create_app]
            """,
            "leaf": "VALUE = 1\n",
        },
    )
    result = _check("cyclic", path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cyclic.api -> cyclic.app -> cyclic.api" in result.stderr
    assert "cyclic.app:3: from cyclic.api import router" in result.stderr
    assert "cyclic.leaf" not in result.stderr


def test_cycle_across_two_packages_fails(tmp_path: Path) -> None:
    _package(tmp_path, "first", {"a": "from second.b import B\n"})
    _package(tmp_path, "second", {"b": "B = 1\n\n\ndef f():\n    import first.a\n"})
    result = _check("first", "second", path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first.a -> second.b -> first.a" in result.stderr


def test_acyclic_package_passes(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "layered",
        {
            "runtime": "class Runtime: ...\n",
            "api": "from layered.runtime import Runtime\n",
            "app": "from layered.api import Runtime\n\n\ndef f():\n    import layered.runtime\n",
        },
    )
    result = _check("layered", path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no import cycle" in result.stdout


def test_type_checking_imports_never_run_and_count_only_when_asked(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "typed",
        {
            "a": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from typed.b import B
            """,
            "b": "from typed.a import TYPE_CHECKING\n\nB = 1\n",
        },
    )
    assert _check("typed", path=tmp_path).returncode == 0
    result = _check("--include-type-checking", "typed", path=tmp_path)
    assert result.returncode == 1
    assert "typed.a -> typed.b -> typed.a" in result.stderr


def test_the_project_has_no_import_cycle() -> None:
    result = _check()
    assert result.returncode == 0, result.stderr
    for package in ("phoihop_schemas", "phoihop_ingest", "phoihop_routing", "phoihop_audit"):
        assert package in result.stdout
