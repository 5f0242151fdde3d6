"""The package's import graph, read with ast: files and lines per package, import circles, imports of the CLI.

    python bench/import_graph.py [PACKAGE_DIR] [--json OUT]

An arrow A -> B is an import statement in module A that loads module B (`from .x import y` loads x, and y
too when y is a submodule). Two graphs are counted: imports at module level (what loading a module loads) and
all imports, those inside functions included (what a module can reach). A circle is a strongly connected
component of more than one module (Tarjan); its arrows are the ones that run back up a layering. Imports
made from strings (importlib.import_module, the searcher registry's "module:Class") are not seen.

"library -> CLI" counts arrows into PACKAGE.cli from outside it. The program's entry points (the modules
pyproject.toml's [project.scripts] names, and every __main__) start the command line, so they count as its
side, not as library.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([target] if target else [])])


def arrows(root: Path, modules: dict[str, Path]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(module-level arrows, all arrows) between the package's modules."""
    top, every = set(), set()
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        module_level = {id(n) for n in tree.body} | {
            id(n) for stmt in tree.body if isinstance(stmt, ast.If) for n in stmt.body
        }
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module) if node.level else node.module or ""
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            if isinstance(node, ast.ImportFrom) and _type_checking_only(tree, node):
                continue
            for target in targets:
                if target in modules and target != name:
                    every.add((name, target))
                    if id(node) in module_level:
                        top.add((name, target))
    return top, every


def _type_checking_only(tree: ast.Module, node: ast.AST) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test) and node in stmt.body:
            return True
    return False


def circles(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found, key=len, reverse=True)


def entry_points(root: Path) -> set[str]:
    """The modules that start the program: [project.scripts] targets in the checkout's pyproject.toml, and __main__s."""
    import tomllib

    found = {name for name in modules_of(root) if name.endswith(".__main__") or name == "__main__"}
    pyproject = root.parent / "pyproject.toml"
    if pyproject.is_file():
        scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
        found |= {target.split(":")[0] for target in scripts.values()}
    return found


def measure(root: Path) -> dict:
    modules = modules_of(root)
    packages: dict[str, dict[str, int]] = defaultdict(lambda: {"files": 0, "lines": 0})
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        packages[package]["files"] += 1
        packages[package]["lines"] += len(path.read_text().splitlines())
    top, every = arrows(root, modules)
    out = {"modules": len(modules), "packages": dict(sorted(packages.items()))}
    cli = f"{root.name}.cli"
    entries = entry_points(root)
    for label, edges in (("module_level", top), ("all", every)):
        found = circles(list(modules), edges)
        members = {m for c in found for m in c}
        inside = sum(1 for a, b in edges if a in members and b in members and any(a in c and b in c for c in found))
        out[label] = {
            "arrows": len(edges),
            "circles": len(found),
            "circle_sizes": [len(c) for c in found],
            "arrows_inside_circles": inside,
            "library_imports_cli": sorted(
                f"{a} -> {b}"
                for a, b in edges
                if b.startswith(cli) and not a.startswith(cli) and a != root.name and a not in entries
            ),
            "largest_circle": found[0] if found else [],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "dipsearch"))
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args()
    result = measure(Path(args.package).resolve())
    for label in ("module_level", "all"):
        r = result[label]
        print(
            f"{label}: {r['arrows']} arrows, {r['circles']} circles of sizes {r['circle_sizes']}, "
            f"{r['arrows_inside_circles']} arrows inside circles, {len(r['library_imports_cli'])} library -> CLI"
        )
    for package, size in result["packages"].items():
        print(f"  {package}: {size['files']} files, {size['lines']} lines")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
