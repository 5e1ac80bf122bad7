"""The package's shape: dependencies point one way, and no object reaches into another.

Walks every module of ``oe_async`` (``oe_async.testing`` and ``oe_async.cli`` included) with
``ast``. Imports count wherever they are: at the top, under ``TYPE_CHECKING``, inside
functions. docs/architecture.md explains the layers; a new module must be given one here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "oe_async"

#: Each module's layer. A module may import only from lower layers; modules of the pure
#: layer (0) and of the tools layer (8) may also import each other, and so may the modules
#: of one package (``oe_async._funnel``...) in the same layer (still without cycles).
LAYERS: dict[str, int] = {
    # 0 pure: the protocol without I/O
    "oe_async._version": 0,
    "oe_async._redact": 0,
    "oe_async.errors": 0,
    "oe_async.errors._base": 0,
    "oe_async.errors._relay": 0,
    "oe_async.errors._plugin": 0,
    "oe_async.errors._status": 0,
    "oe_async.errors._text": 0,
    "oe_async._convert": 0,
    "oe_async._enums": 0,
    "oe_async.auth": 0,
    "oe_async.retry": 0,
    "oe_async.mjpeg": 0,
    "oe_async.mjpeg._frame": 0,
    "oe_async.mjpeg._boundary": 0,
    "oe_async.mjpeg._headers": 0,
    "oe_async.mjpeg._body": 0,
    "oe_async.mjpeg._parser": 0,
    "oe_async.models": 0,
    "oe_async._lan": 0,
    "oe_async.portal": 0,
    "oe_async.plugin_models": 0,
    "oe_async.plugin_commands": 0,
    "oe_async._plugin_wire": 0,
    "oe_async.webhooks": 0,
    "oe_async.subscription": 0,
    "oe_async.mqtt_packets": 0,
    "oe_async.mqtt_codec": 0,
    "oe_async.mqtt_errors": 0,
    "oe_async.bambu": 0,
    "oe_async._fanout": 0,
    # 1 what the funnel is made of: response helpers, routing, the shared session (a package:
    # the timeouts, the connection budget, the kept-alive connector, what close() ends)
    "oe_async._http": 1,
    "oe_async.routing": 1,
    "oe_async._transport": 1,
    "oe_async._transport.timeouts": 1,
    "oe_async._transport.budget": 1,
    "oe_async._transport.keepalive": 1,
    "oe_async._transport.owned": 1,
    "oe_async._transport.transport": 1,
    # 2 the one request funnel (a package: its modules may import each other)
    "oe_async._funnel": 2,
    "oe_async._funnel.calls": 2,
    "oe_async._funnel.routes": 2,
    "oe_async._funnel.attempts": 2,
    "oe_async._funnel.handshake": 2,
    "oe_async._funnel.funnel": 2,
    "oe_async._funnel.feature": 2,
    # 3 the streaming engine that two features share (files, plugin file commands); a package
    "oe_async.transfer": 3,
    "oe_async.transfer._files": 3,
    "oe_async.transfer._uploads": 3,
    "oe_async.transfer._downloads": 3,
    "oe_async.transfer._sinks": 3,
    "oe_async.transfer._progress": 3,
    "oe_async.transfer._offload": 3,
    # 3 one MQTT session over a WebSocket (the mqtt feature's engine)
    "oe_async.mqtt_session": 3,
    # 4 features (plugin_api and websocket are packages: their modules may import each other)
    "oe_async.webcam": 4,
    "oe_async.webcam._webcam": 4,
    "oe_async.webcam._stream": 4,
    "oe_async.webcam._shared": 4,
    "oe_async.websocket": 4,
    "oe_async.websocket._socket": 4,
    "oe_async.app_api": 4,
    "oe_async.gadget": 4,
    "oe_async.plugin_api": 4,
    "oe_async.plugin_api._args": 4,
    "oe_async.plugin_api._calls": 4,
    "oe_async.plugin_api._files": 4,
    "oe_async.diagnostics": 4,
    "oe_async.mqtt": 4,
    # 5 the façade, 6 the client, 7 the package's public names (oe_async/__init__.py)
    "oe_async.connection": 5,
    # 5 also: a façade over a feature for one kind of printer (BambuPrinter over mqtt)
    "oe_async.bambu_mqtt": 5,
    "oe_async.client": 6,
    "oe_async": 7,
}
TOOLS_LAYER = 8  # the simulator, the CLI and ``python -m oe_async``
SHARED_LAYERS = {0, TOOLS_LAYER}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


TOOLS = ("oe_async.testing", "oe_async.cli", "oe_async.__main__")


def layer_of(module: str) -> int | None:
    if any(module == tool or module.startswith(tool + ".") for tool in TOOLS):
        return TOOLS_LAYER
    return LAYERS.get(module)


def modules(root: Path) -> dict[str, Path]:
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path) -> dict[str, dict[str, int]]:
    """For each module, the package modules it imports and the line of the first import.

    ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else of
    ``pkg`` itself (its ``__init__``, which runs everything it imports). The implicit import
    of a parent package when a submodule is imported is not counted.
    """
    known = modules(root)
    graph: dict[str, dict[str, int]] = {name: {} for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in known else base)
            for imported in targets:
                target = imported
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start, first_children in graph.items():
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(first_children))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def private_reach(root: Path) -> list[str]:
    """Every ``obj._name`` where ``obj`` is not ``self``, ``cls``, ``super()`` or a module."""
    known = modules(root)
    short_names = {name.rpartition(".")[2] for name in known}
    found = []
    for path in known.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr.endswith("_"):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls", *short_names}:
                continue
            if (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
            ):
                continue
            where = path.relative_to(root.parent)
            found.append(f"{where}:{node.lineno}: .{attr} on {ast.unparse(owner)[:40]}")
    return found


def _same_package(one: str, other: str) -> bool:
    """Both modules are in the same subpackage of oe_async (its ``__init__`` included)."""
    return one.split(".")[:2] == other.split(".")[:2]


def layer_violations(graph: dict[str, dict[str, int]], root: Path) -> list[str]:
    known = modules(root)
    problems = []
    for name, targets in graph.items():
        mine = layer_of(name)
        if mine is None:
            problems.append(f"{name} has no layer: add it to LAYERS in tests/test_architecture.py")
            continue
        for target, line in targets.items():
            theirs = layer_of(target)
            if theirs is None:
                continue  # reported for that module itself
            if theirs > mine or (
                theirs == mine and mine not in SHARED_LAYERS and not _same_package(name, target)
            ):
                where = known[name].relative_to(root.parent)
                problems.append(
                    f"{where}:{line}: {name} (layer {mine}) imports {target} (layer {theirs})"
                )
    return problems


def test_no_import_cycles() -> None:
    found = cycles(imports(PACKAGE))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_dependencies_point_down_the_layers() -> None:
    problems = layer_violations(imports(PACKAGE), PACKAGE)
    assert not problems, "\n".join(problems)


def test_no_object_reaches_into_another_objects_private_members() -> None:
    found = private_reach(PACKAGE)
    assert not found, "private access across objects:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import b\n", [["pkg.a", "pkg.b"]]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import X\n",
            [["pkg.a", "pkg.b"]],
        ),
        ("def f():\n    from .b import X\n", [["pkg.a", "pkg.b"]]),
        ("import os\n", []),
    ],
)
def test_the_cycle_finder_counts_every_kind_of_import(
    tmp_path: Path, source: str, expected: list[list[str]]
) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text(source)
    (root / "b.py").write_text("from .a import Y\n")
    assert cycles(imports(root)) == expected


def test_the_private_reach_finder(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text(
        "class A:\n"
        "    def f(self, other):\n"
        "        self._mine = other._theirs\n"
        "        super()._parent()\n"
        "        return other.__class__\n"
    )
    assert private_reach(root) == ["pkg/a.py:3: ._theirs on other"]
