"""The folder tree is the architecture: imports only go down the layers, and no module imports
itself back through others.

Every ``import`` in ``bot/`` and ``ingest/`` counts, including the ones inside functions and
under ``TYPE_CHECKING``: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module may import its own layer's modules and any layer below it.
LAYERS: list[tuple[str, ...]] = [
    ("bot.core", "bot"),  # ``bot`` itself only holds __version__
    ("ingest",),
    ("bot.knowledge",),
    ("bot.people",),
    ("bot.conversations",),
    ("bot.handoff",),
    ("bot.reports",),
    ("bot.live",),
    ("bot.web",),
    ("bot.cli",),
]


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to bot/__init__.py")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("bot", "ingest"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            modules[module_name(path)] = path
    return modules


def imports_of(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """Project modules that ``path`` imports (``from pkg import module`` resolved to the
    module when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target
                break


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: set(imports_of(path, name, known)) for name, path in modules.items()}


def test_every_module_is_in_a_layer() -> None:
    for name in project_modules():
        layer_of(name)


def test_imports_only_go_down_the_layers() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(source)
    ]
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a2"}, "a2": set(), "b": {"a"}}, False),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], has_cycle: bool) -> None:
    assert (find_cycle(graph) is not None) is has_cycle


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself must fail on what it guards against (a test that cannot fail is a
    defect): a core module importing the web layer is reported."""
    source = tmp_path / "fake.py"
    source.write_text("from bot.web.app import create_app\n")
    targets = set(imports_of(source, "bot.core.fake", {"bot.web.app", "bot.core.fake"}))
    assert targets == {"bot.web.app"}
    assert layer_of("bot.web.app") > layer_of("bot.core.fake")


def test_nothing_cites_a_file_outside_the_repository() -> None:
    """The repository explains itself: no code or doc points at a design file it does not hold."""
    offenders = []
    for path in ROOT.rglob("*"):
        if (
            not path.is_file()
            or path.suffix not in {".py", ".md", ".js", ".html", ".toml", ".sh", ".css"}
            or any(part in {".venv", ".git", "data", "node_modules"} for part in path.parts)
        ):
            continue
        text = path.read_text(errors="replace")
        if "DESIGN.md" in text and path != Path(__file__):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
