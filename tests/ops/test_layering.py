"""Layering: the runtime packages never import the development tooling, nor pytest.

`phoihop_embedded` (`make run`'s launcher, the embedded broker) and `phoihop_testkit` (the
pytest plugin, `poll`, the webhook receiver, whole-bus evaluation) may import the runtime
packages, never the other way round; and no runtime module imports pytest. The graph is
grimp's, as in tools/check_cycles.py: it reads the source, so an import inside a function
or under `if TYPE_CHECKING:` counts too.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

RUNTIME = (
    "phoihop_schemas",
    "phoihop_common",
    "phoihop_ingest",
    "phoihop_routing",
    "phoihop_notify",
    "phoihop_audit",
)
TOOLING = ("phoihop_embedded", "phoihop_testkit")
PYTEST = ("pytest", "_pytest")


def forbidden_imports(
    graph: grimp.ImportGraph, packages: Iterable[str], forbidden: Iterable[str]
) -> list[str]:
    """Each import, by a module of `packages`, of a module of a `forbidden` top-level package."""
    banned = set(forbidden)
    found: list[str] = []
    for package in packages:
        for module in sorted(graph.find_descendants(package) | {package}):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported.split(".")[0] not in banned:
                    continue
                details = graph.get_import_details(importer=module, imported=imported)
                found += [
                    f"{module}:{d['line_number']}: {d['line_contents'].strip()}" for d in details
                ] or [f"{module} -> {imported}"]
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The import graph of every first-party package, pytest included as an external one."""
    return grimp.build_graph(
        *RUNTIME,
        *TOOLING,
        include_external_packages=True,
        exclude_type_checking_imports=False,
        cache_dir=None,
    )


def test_no_runtime_package_imports_the_launcher_or_the_testkit(graph: grimp.ImportGraph) -> None:
    assert forbidden_imports(graph, RUNTIME, TOOLING) == []


def test_no_runtime_package_imports_pytest(graph: grimp.ImportGraph) -> None:
    assert forbidden_imports(graph, RUNTIME, PYTEST) == []


def test_the_graph_sees_the_tooling_and_pytest(graph: grimp.ImportGraph) -> None:
    """The two checks above look at a graph that holds what they forbid."""
    plugin = graph.find_modules_directly_imported_by("phoihop_testkit.plugin")
    assert {"pytest", "phoihop_embedded.stack", "phoihop_common.kafka"} <= plugin
    assert forbidden_imports(graph, ["phoihop_testkit"], ["phoihop_embedded"])
    assert forbidden_imports(graph, ["phoihop_testkit"], PYTEST)


def test_an_import_inside_a_function_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, modules in {
        "layer_runtime": {
            "core": "VALUE = 1\n",
            "helpers": """
                def late():
                    from layer_tooling.kit import KIT

                    return KIT
            """,
        },
        "layer_tooling": {"kit": "from layer_runtime.core import VALUE\n\nKIT = VALUE\n"},
    }.items():
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for module, source in modules.items():
            (package / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    synthetic = grimp.build_graph("layer_runtime", "layer_tooling", cache_dir=None)
    assert forbidden_imports(synthetic, ["layer_runtime"], ["layer_tooling"]) == [
        "layer_runtime.helpers:3: from layer_tooling.kit import KIT"
    ]
    assert forbidden_imports(synthetic, ["layer_tooling"], ["layer_runtime"])
