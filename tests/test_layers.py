"""The layers of the house: every module imports only its own layer or those below it, and there
is no import cycle, neither among modules nor among the top-level packages. Imports inside
functions count as much as those at the top of a file."""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("asl_edge", "edge", "convert", "calibration")
# The longest matching prefix gives a module's layer; lower numbers are lower layers.
LAYERS = {
    "edge": 0,
    "edge.core": 0,
    "edge.runtime": 1,
    "edge.demo": 2,
    "convert": 3,
    "calibration": 4,
    "asl_edge": 5,
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = project_modules()


def imported(name: str, path: Path) -> Iterator[str]:
    """The project modules ``name`` imports, wherever in the file the import statement stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            module = target
            while module and module not in MODULES:
                module = module.rpartition(".")[0]
            if module and module != name:
                yield module
                break


GRAPH = {name: set(imported(name, path)) for name, path in MODULES.items()}


def layer(name: str) -> int:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_scan_sees_the_imports_it_should():
    assert "edge.core.config" in GRAPH["edge.runtime.daemon"]
    # A lazy import inside a function counts too.
    assert "edge.runtime.daemon" in GRAPH["edge.runtime.commands"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert upward == []


def test_no_import_cycle_among_modules():
    assert cycles(GRAPH) == []


def test_no_import_cycle_among_top_level_packages():
    packages: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for source, targets in GRAPH.items():
        for target in targets:
            if target.split(".")[0] != source.split(".")[0]:
                packages[source.split(".")[0]].add(target.split(".")[0])
    assert cycles(packages) == []
