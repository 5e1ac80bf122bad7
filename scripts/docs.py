"""Build the API reference from the docstrings with pdoc, and fail on any problem it shows.

``make docs`` runs it: ``python scripts/docs.py [OUT]`` writes HTML into ``OUT`` (default
``build/docs``; open ``index.html``). It exits 1, listing every problem, when

- pdoc (or anything it calls) emits a warning: a module that does not import, an annotation
  it cannot evaluate, a docstring it cannot process...;
- a Sphinx-style reference (``:class:`X```, ``:meth:`X```...) names nothing that exists from
  where it is written (a renamed or removed method, a typo);
- a rendered docstring shows a reference to ``oe_async`` that pdoc could not turn into a link
  (a ``~`` prefix pdoc does not understand, or a module that is not documented).

Docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``), rendered with pdoc's
``google`` docformat. Only pdoc and the package itself are needed (``pip install -e '.[docs]'``).
"""

from __future__ import annotations

import builtins
import importlib
import re
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pdoc
import pdoc.doc
import pdoc.render

from oe_async import __version__

#: The documented modules: the library's public names (all re-exported by ``oe_async``) and
#: the public test helpers.
MODULES = (
    "oe_async",
    "oe_async.testing",
    "oe_async.testing.relay",
    "oe_async.testing.hostile",
    "oe_async.testing.pytest_plugin",
)
ROLE = re.compile(r"(?::py)?:(mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")
#: A Google section header with more than its name ("Attributes (on every subclass):"):
#: pdoc renders what follows as a paragraph instead of a list.
ODD_SECTION = re.compile(
    r"^[ \t]*((?:Args|Arguments|Parameters|Returns|Yields|Raises|Attributes)\b[^:\n]+:)[ \t]*$",
    re.M,
)


def _lookup(root: Any, dotted: str) -> bool:
    obj = root
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if not isinstance(obj, type):
                return False
            # An instance attribute (``self.x: T = ...`` in ``__init__``): pdoc knows those.
            rest = ".".join([obj.__qualname__, *parts[index:]])
            return pdoc.doc.Module.from_name(obj.__module__).get(rest) is not None
    return True


def _resolves(target: str, doc: pdoc.doc.Doc[Any]) -> bool:
    """Whether a role's target names something from where ``doc`` is defined."""
    name = target.lstrip("~").removesuffix("()").strip()
    if not name:
        return False
    head, _, rest = name.partition(".")
    if head == "oe_async":
        return _lookup(importlib.import_module("oe_async"), rest) if rest else True
    module = importlib.import_module(doc.taken_from[0])
    scopes: list[Any] = []
    qualname = doc.taken_from[1]
    owner: Any = module
    for part in qualname.split(".") if qualname else ():
        owner = getattr(owner, part, None)
        if owner is None:
            break
        if isinstance(owner, type):
            scopes.append(owner)
    # pdoc links a name relative to the page it shows the docstring on, too.
    page = importlib.import_module(doc.modulename)
    scopes.extend([module, page, importlib.import_module("oe_async"), builtins])
    for scope in scopes:
        if _lookup(scope, name):
            return True
    try:  # a module: :mod:`asyncio`, or a name in one: :class:`aiohttp.ClientSession`
        importlib.import_module(head)
    except ImportError:
        return False
    return _lookup(importlib.import_module(head), rest) if rest else True


def _walk(doc: pdoc.doc.Doc[Any], seen: set[str]) -> list[pdoc.doc.Doc[Any]]:
    if doc.fullname in seen:
        return []
    seen.add(doc.fullname)
    found: list[pdoc.doc.Doc[Any]] = [doc]
    if isinstance(doc, pdoc.doc.Namespace):
        for member in doc.own_members if isinstance(doc, pdoc.doc.Class) else doc.members.values():
            found.extend(_walk(member, seen))
    return found


def docstring_problems(modules: list[pdoc.doc.Module]) -> list[str]:
    """References that name nothing and section headers pdoc cannot read, in documented
    docstrings."""
    problems: list[str] = []
    seen: set[str] = set()
    for module in modules:
        for doc in _walk(module, seen):
            for match in ROLE.finditer(doc.docstring):
                if not _resolves(match.group(2), doc):
                    where = ".".join(part for part in doc.taken_from if part)
                    problems.append(f"{where}: {match.group(0)} names nothing")
            for match in ODD_SECTION.finditer(doc.docstring):
                where = ".".join(part for part in doc.taken_from if part)
                problems.append(f"{where}: {match.group(1)!r} is not a section header pdoc reads")
    return problems


class _DocstringCode(HTMLParser):
    """Collects ``<code>`` text inside rendered docstrings that is not inside a link."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # <div> nesting inside a docstring (0: outside)
        self.links = 0
        self.code: list[str] | None = None
        self.linked = False
        self.unlinked: list[str] = []
        self.tilde: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            if self.depth:
                self.depth += 1
            elif ("class", "docstring") in attrs:
                self.depth = 1
        elif self.depth and tag == "a":
            self.links += 1
            self.linked = self.code is not None  # <code><a ...>name</a></code>: a link
        elif self.depth and tag == "code" and not self.links:
            self.code, self.linked = [], False

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1
        elif tag == "a" and self.links:
            self.links -= 1
        elif tag == "code" and self.code is not None:
            text = "".join(self.code)
            if not self.linked:
                self.unlinked.append(text)
            elif text.startswith("~"):  # pdoc links ``~a.B`` but shows the ``~``
                self.tilde.append(text)
            self.code = None

    def handle_data(self, data: str) -> None:
        if self.code is not None:
            self.code.append(data)


def unlinked_references(out: Path) -> list[str]:
    """``oe_async`` references (or ``~`` ones) that the rendered pages show as plain code."""
    problems: list[str] = []
    for page in sorted(out.rglob("*.html")):
        parser = _DocstringCode()
        parser.feed(page.read_text(encoding="utf-8"))
        name = page.relative_to(out)
        problems.extend(
            f"{name}: `{text}` is not a link"
            for text in sorted(set(parser.unlinked))
            if re.fullmatch(r"~[\w.]+(\(\))?|oe_async(\.\w+)+(\(\))?", text)
        )
        problems.extend(
            f"{name}: `{text}` shows its `~` (pdoc keeps it)" for text in sorted(set(parser.tilde))
        )
    return problems


def build(out: Path) -> list[str]:
    """Render the reference into ``out``; every problem found, as text."""
    pdoc.render.configure(docformat="google", footer_text=f"oe_async {__version__}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*MODULES, output_directory=out)
        modules = [pdoc.doc.Module.from_name(name) for name in MODULES]
    problems = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    problems += docstring_problems(modules)
    problems += unlinked_references(out)
    return problems


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "build/docs")
    problems = build(out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"docs: {len(problems)} problem(s); the pages are in {out}/", file=sys.stderr)
        return 1
    print(f"docs: the API reference is in {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
