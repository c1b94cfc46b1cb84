"""Fail when first-party modules import each other in a cycle.

`python tools/check_cycles.py [PACKAGE ...]` (default: every phoihop package) builds the
import graph with grimp, which reads the source and counts every import that can run: at
module level and inside functions (the kind that hides a cycle until the function runs).
Imports under `if TYPE_CHECKING:` never run and are left out unless
`--include-type-checking` is given. Each strongly connected component of two or more
modules is a cycle; the shortest cycle through it is printed with the importing lines, and
the exit status is 1. Exit 0: the graph is acyclic.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator, Sequence

import grimp

PACKAGES = (
    "phoihop_schemas",
    "phoihop_common",
    "phoihop_ingest",
    "phoihop_routing",
    "phoihop_notify",
    "phoihop_audit",
    "phoihop_embedded",
    "phoihop_testkit",
)


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    work: list[tuple[str, Iterator[str]]] = []
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        work.append((module, iter(sorted(graph.find_modules_directly_imported_by(module)))))

    for root in sorted(graph.modules):
        if root in index:
            continue
        visit(root)
        while work:
            module, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    visit(successor)
                    break
                if successor in on_stack:
                    low[module] = min(low[module], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: grimp.ImportGraph, component: Sequence[str]) -> list[str]:
    """The shortest cycle through the component's modules, as [a, b, ..., a]."""
    members = set(component)
    best: list[str] | None = None
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None and (best is None or len(back) + 1 < len(best)):
                best = [importer, *back]
    assert best is not None, "a strongly connected component always holds a cycle"
    return best


def describe(graph: grimp.ImportGraph, cycle: Sequence[str]) -> str:
    """The cycle, one import per line, with where each import is written."""
    lines = [" -> ".join(cycle)]
    for importer, imported in itertools.pairwise(cycle):
        for detail in graph.get_import_details(importer=importer, imported=imported):
            lines.append(
                f"    {importer}:{detail['line_number']}: {detail['line_contents'].strip()}"
            )
    return "\n".join(lines)


def find_cycles(packages: Sequence[str], *, type_checking: bool = False) -> list[str]:
    """A description of each import cycle among the packages' modules (empty: none)."""
    graph = grimp.build_graph(
        *packages, exclude_type_checking_imports=not type_checking, cache_dir=None
    )
    return [describe(graph, shortest_cycle(graph, c)) for c in strongly_connected(graph)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/check_cycles.py", description=__doc__)
    parser.add_argument("packages", nargs="*", default=PACKAGES, help="top-level packages")
    parser.add_argument(
        "--include-type-checking",
        action="store_true",
        help="count imports under `if TYPE_CHECKING:` too (they never run)",
    )
    args = parser.parse_args(argv)
    cycles = find_cycles(args.packages, type_checking=args.include_type_checking)
    for cycle in cycles:
        print(f"import cycle: {cycle}", file=sys.stderr)
    if cycles:
        print(f"{len(cycles)} import cycle(s) among {', '.join(args.packages)}", file=sys.stderr)
        return 1
    print(f"no import cycle among {', '.join(args.packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
