"""Print the largest functions (lines, cyclomatic complexity) and the import graph between our packages.

Usage:
    .venv/bin/python scripts/code_metrics.py [--root DIR] [--top 12]

Functions are measured by lizard (``NLOC``: lines of code without comments and blank lines;
``CCN``: McCabe's cyclomatic complexity), the module graph by grimp (an edge ``a -> b`` when a
module of package ``a`` imports one of package ``b``). Generated code (``k8s_charts/imports``)
and tests are left out. ``--root`` measures another checkout (for a before/after). The last line
is machine-readable: ``max_ccn=… max_nloc=… functions_ccn_over_15=… package_edges=…``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import grimp
import lizard

PACKAGES = ("app_config", "cdk_constructs", "stacks", "k8s_charts", "services", "qvllm")
SKIP_PARTS = ("k8s_charts/imports/", "/tests/")
COMPLEX = 15  # a common review threshold for McCabe complexity (lizard's own warning default)


def source_files(root: Path) -> list[Path]:
    """Our Python sources under ``root`` (no tests, no generated code)."""
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if not any(part in "/" + rel for part in SKIP_PARTS):
                files.append(path)
    return files


def largest_functions(root: Path) -> list[tuple[int, int, str]]:
    """``(ccn, nloc, "path:function")`` of every function, most complex first."""
    rows = []
    for path in source_files(root):
        info = lizard.analyze_file(str(path))
        for fn in info.function_list:
            rows.append((fn.cyclomatic_complexity, fn.nloc, f"{path.relative_to(root)}::{fn.name}"))
    return sorted(rows, reverse=True)


def package_graph(root: Path) -> dict[str, set[str]]:
    """Top-level package -> the top-level packages its modules import (our packages only)."""
    sys.path.insert(0, str(root))
    present = [p for p in PACKAGES if (root / p / "__init__.py").exists()]
    graph = grimp.build_graph(*present, cache_dir=None)
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        if ".imports." in module or module.endswith(".imports"):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = module.split(".")[0], imported.split(".")[0]
            if a != b:
                edges[a].add(b)
    return edges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    rows = largest_functions(root)
    print(f"{'CCN':>4} {'NLOC':>5}  function")
    for ccn, nloc, name in rows[: args.top]:
        print(f"{ccn:>4} {nloc:>5}  {name}")
    by_lines = sorted(rows, key=lambda r: r[1], reverse=True)[: args.top]
    print(f"\nlongest: " + ", ".join(f"{name} ({nloc} lines)" for _, nloc, name in by_lines[:5]))
    edges = package_graph(root)
    print("\nmodule graph (package -> packages it imports):")
    for package in PACKAGES:
        if package in edges or (root / package).exists():
            print(f"  {package:<15} -> {', '.join(sorted(edges.get(package, ()))) or '(nothing of ours)'}")
    n_edges = sum(len(v) for v in edges.values())
    print(
        f"max_ccn={rows[0][0]} max_nloc={by_lines[0][1]} "
        f"functions_ccn_over_{COMPLEX}={sum(1 for r in rows if r[0] > COMPLEX)} package_edges={n_edges}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
