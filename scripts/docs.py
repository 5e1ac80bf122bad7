"""Build the documentation site (guides and API reference) with pdoc; fail on any problem.

``make docs`` runs it: ``python scripts/docs.py [OUT]`` writes one site into ``OUT`` (default
``build/docs``; open ``index.html``), every page rendered by pdoc with one sidebar (the front
page, the guides, the reference modules) and one search:

- ``index.html``: README.md, the front page; ``docs/<guide>.html``: every guide of docs/,
  in the order the README lists them. Their links are rewritten for the site and their code
  spans linked to the reference (``docs_pages``);
- ``oe_async.html`` and ``oe_async/testing*.html``: the API reference, generated from the
  docstrings (Google style, pdoc's ``google`` docformat), showing what an app can use: no
  private type in a public signature, no constructor an app cannot call (``docs_public``).

It exits 1, listing every problem, when

- pdoc (or anything it calls) emits a warning: a module that does not import, an annotation
  it cannot evaluate, a docstring it cannot process...;
- a Sphinx-style reference (``:class:`X```, ``:meth:`X```...) names nothing that exists from
  where it is written (a renamed or removed method, a typo);
- a rendered page shows a reference to ``oe_async`` that pdoc could not turn into a link
  (a ``~`` prefix pdoc does not understand, or a module that is not documented);
- a link leads nowhere: a guide's link to a file that does not exist, or any link of any
  page to a page of the site that does not exist or to an anchor (``#...``, a heading's or
  an entry's) its page does not have;
- a public signature (a class line, a function's parameters, defaults and return type, a
  variable's annotation and value) shows a private name: a dotted name with a private part
  (``oe_async._funnel.Funnel``), a ``_name``, or a type of this package that the reference
  does not document;
- a class an app cannot construct is handed out by no public member.

Only pdoc and the package itself are needed (``pip install -e '.[docs]'``).
"""

from __future__ import annotations

import builtins
import importlib
import posixpath
import re
import shutil
import sys
import warnings
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pdoc
import pdoc.doc
import pdoc.extract
import pdoc.render
from docs_pages import References, link_code_spans, read_pages, repository_url, site_markdown
from docs_public import PublicView, walk

from oe_async import __version__

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "scripts" / "docs_templates"
#: The reference: the library's public names (all re-exported by ``oe_async``) and the
#: public test helpers.
MODULES = (
    "oe_async",
    "oe_async.testing",
    "oe_async.testing.relay",
    "oe_async.testing.hostile",
    "oe_async.testing.pytest_plugin",
    "oe_async.testing.files",
    "oe_async.testing.mjpeg_source",
    "oe_async.testing.plugin_state",
)
#: The Markdown pages: the README is the front page, every docs/*.md a guide.
FRONT_PAGE = "README.md"
GUIDES = "docs"
ROLE = re.compile(r"(?::py)?:(mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")
#: A Google section header with more than its name ("Attributes (on every subclass):"):
#: pdoc renders what follows as a paragraph instead of a list.
ODD_SECTION = re.compile(
    r"^[ \t]*((?:Args|Arguments|Parameters|Returns|Yields|Raises|Attributes)\b[^:\n]+:)[ \t]*$",
    re.M,
)


# ---------------------------------------------------------------------- docstring checks


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


def docstring_problems(modules: list[pdoc.doc.Module]) -> list[str]:
    """References that name nothing and section headers pdoc cannot read, in documented
    docstrings."""
    problems: list[str] = []
    seen: set[str] = set()
    for module in modules:
        for doc in walk(module, seen):
            for match in ROLE.finditer(doc.docstring):
                if not _resolves(match.group(2), doc):
                    where = ".".join(part for part in doc.taken_from if part)
                    problems.append(f"{where}: {match.group(0)} names nothing")
            for match in ODD_SECTION.finditer(doc.docstring):
                where = ".".join(part for part in doc.taken_from if part)
                problems.append(f"{where}: {match.group(1)!r} is not a section header pdoc reads")
    return problems


# ---------------------------------------------------------------------- HTML checks


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
    """``oe_async`` references (or ``~`` ones) that the rendered pages show as plain code
    (a private name, ``oe_async._funnel``, is never documented: a guide may name one)."""
    problems: list[str] = []
    for page in sorted(out.rglob("*.html")):
        parser = _DocstringCode()
        parser.feed(page.read_text(encoding="utf-8"))
        name = page.relative_to(out)
        problems.extend(
            f"{name}: `{text}` is not a link"
            for text in sorted(set(parser.unlinked))
            if re.fullmatch(r"~[\w.]+(\(\))?|oe_async(\.[A-Za-z]\w*)+(\(\))?", text)
        )
        problems.extend(
            f"{name}: `{text}` shows its `~` (pdoc keeps it)" for text in sorted(set(parser.tilde))
        )
    return problems


class _Anchors(HTMLParser):
    """A page's ``id``s, its links, and the text of its signatures (``<div class="attr">``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.signatures: list[tuple[str, str]] = []  # (the entry's id, its text)
        self._where = ""
        self._depth = 0  # <div> nesting inside a signature (0: outside)
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
            if tag in ("section", "div"):
                self._where = str(values["id"])
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag == "div":
            if self._depth:
                self._depth += 1
            elif (values.get("class") or "").startswith("attr "):
                self._depth, self._text = 1, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.signatures.append((self._where, " ".join("".join(self._text).split())))

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)


def parse_pages(out: Path) -> dict[str, _Anchors]:
    parsed = {}
    for page in sorted(out.rglob("*.html")):
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page.relative_to(out).as_posix()] = parser
    return parsed


def broken_links(parsed: Mapping[str, _Anchors]) -> list[str]:
    """Links between the site's pages that lead to no page, or to an anchor it lacks."""
    problems: list[str] = []
    for name, page in parsed.items():
        for href in sorted(set(page.links)):
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href):
                continue  # another site (the repository's files, the spec, pdoc.dev...)
            path, _, fragment = href.partition("#")
            target = (
                posixpath.normpath(posixpath.join(posixpath.dirname(name), path)) if path else name
            )
            if target not in parsed:
                problems.append(f"{name}: the link {href!r} leads to no page")
            elif fragment and fragment not in parsed[target].ids:
                problems.append(f"{name}: the link {href!r}: {target} has no #{fragment}")
    return problems


def private_names(parsed: Mapping[str, _Anchors], view: PublicView) -> list[str]:
    """Private names in the public signatures of the rendered pages (see ``docs_public``)."""
    return [
        f"{name}#{where}: {token} (a private name) in the public signature {text!r}"
        for name, page in parsed.items()
        for where, text in page.signatures
        for token in view.leaks(text)
    ]


# ---------------------------------------------------------------------- the build


def build(out: Path) -> list[str]:
    """Render the site into ``out``; every problem found, as text."""
    if out.exists():  # a previous build: a page it had and this one lacks must not linger
        if any(out.iterdir()) and not (out / "search.js").exists():
            return [f"{out} is not empty and holds no site built here: not overwriting it"]
        shutil.rmtree(out)
    pdoc.render.configure(
        docformat="google", footer_text=f"oe_async {__version__}", template_directory=TEMPLATES
    )
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = [pdoc.doc.Module.from_name(name) for name in pdoc.extract.walk_specs(MODULES)]
        problems += docstring_problems(reference)
        view = PublicView(reference, package=MODULES[0])
        problems += view.apply()
        references = References(view)
        pages = read_pages(ROOT, FRONT_PAGE, GUIDES)
        by_source = {page.source: page for page in pages}
        repository = repository_url(ROOT)
        modules = {module.modulename: module for module in reference}
        page_modules: dict[str, pdoc.doc.Module] = {}
        for page in pages:
            markdown, dead = site_markdown(page, by_source, ROOT, repository)
            problems += dead
            page_modules[page.name] = page.module(markdown)
        pdoc.render.env.globals["site"] = {
            "titles": {page.name: page.title for page in pages},
            "pages": [(page.name, page.label) for page in pages],
            "reference": list(modules),
        }
        # The reference is rendered without the pages: pdoc links any text that names a
        # module it renders (`index`, `docs.webcams`); link_code_spans links the pages.
        for module in reference:
            _write(
                out / f"{module.modulename.replace('.', '/')}.html", html_module(module, modules)
            )
        for page in pages:
            page_module = page_modules[page.name]
            html = html_module(page_module, {**modules, page.name: page_module})
            _write(out / page.url, link_code_spans(html, page, references))
        _write(out / "search.js", pdoc.render.search_index({**page_modules, **modules}))
    problems[:0] = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    problems += unlinked_references(out)
    parsed = parse_pages(out)
    problems += broken_links(parsed)
    problems += private_names(parsed, view)
    return problems


def html_module(module: pdoc.doc.Module, modules: Mapping[str, pdoc.doc.Module]) -> str:
    return pdoc.render.html_module(module, modules)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "build/docs")
    problems = build(out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"docs: {len(problems)} problem(s); the pages are in {out}/", file=sys.stderr)
        return 1
    print(f"docs: the site is in {out}/index.html (the guides and the API reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
