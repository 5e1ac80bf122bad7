"""The Markdown pages of the documentation site: the README (front page) and docs/*.md.

Each page is rendered by pdoc as a module whose docstring is the Markdown (pdoc's table of
contents, search and look). Its links are rewritten for the site first (:func:`site_markdown`):
a link to another page (``webcams.md#frames``, ``../README.md#errors``) leads to that page, a
link to any other file of the repository (``../examples/mjpeg_proxy.py``) to that file on
GitHub, and a link to a file that does not exist is a problem. After rendering, a code span
that names a documented object links to it in the reference (:func:`link_code_spans`):
`` `PrinterConnection` ``, `` `oe_async.testing.Simulator` ``, `` `Webcam.frames()` ``, and
the variables the guides use for an object (`` `printer.files.upload()` ``, see
``VARIABLES``).
"""

from __future__ import annotations

import dataclasses
import html
import posixpath
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pdoc.doc
from docs_public import Located, PublicView, resolve, shown

#: Variable names the guides use for an object of a documented class: `printer.files`,
#: `oe.printer()`, `err.message` link to the reference entry of what they name.
VARIABLES = {
    "printer": "PrinterConnection",
    "oe": "OctoEverywhere",
    "sim": "Simulator",
    "err": "OctoEverywhereError",
    "frames": "FrameStream",
    "frame": "Frame",
    "ws": "PrinterWebSocket",
}
#: The end of a Markdown link: its target.
MARKDOWN_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
#: A fenced code block's opening or closing line (``FENCE.split`` keeps the marker).
FENCE = re.compile(r"^ *(```|~~~)", re.M)
#: In a rendered page: an inline code span, or a tag a code span in it must not be linked in.
CODE_OR_CONTAINER = re.compile(r"<code>(?P<code>[^<]*)</code>|<(?P<end>/?)(?:a|pre|h[1-6])\b[^>]*>")
#: A URL with a scheme (another site) rather than a path.
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclasses.dataclass(frozen=True)
class Page:
    """A Markdown file shown as a page of the site."""

    name: str  #: the page's pdoc module name: "index", "docs.webcams"
    source: Path  #: relative to the repository: README.md, docs/webcams.md
    title: str  #: its first heading
    text: str

    @property
    def url(self) -> str:
        return f"{self.name.replace('.', '/')}.html"

    @property
    def label(self) -> str:
        """The page in the site's navigation: its title up to a colon."""
        return "Overview" if self.name == "index" else self.title.split(":")[0]

    def module(self, markdown: str) -> pdoc.doc.Module:
        """The page as pdoc renders it: a module whose docstring is ``markdown``."""
        module = types.ModuleType(self.name, markdown)
        module.__docformat__ = "markdown"  # type: ignore[attr-defined]
        return pdoc.doc.Module(module)


def read_pages(root: Path, front_page: str, guides: str) -> list[Page]:
    """The front page, then the guides in the order its "Documentation" section (or else
    the whole page) links them."""
    front = (root / front_page).read_text(encoding="utf-8")
    listing = front.partition("\n## Documentation\n")[2] or front
    order = re.findall(rf"\]\({guides}/([\w.-]+\.md)\)", listing)
    paths = sorted(
        (root / guides).glob("*.md"),
        key=lambda path: (order.index(path.name) if path.name in order else len(order), path.name),
    )
    pages = []
    for path in [root / front_page, *paths]:
        text = path.read_text(encoding="utf-8")
        heading = re.search(r"^# (.+)$", text, re.M)
        title = heading.group(1).replace("`", "") if heading else path.stem
        name = "index" if path.name == front_page else f"{guides}.{path.stem}"
        pages.append(Page(name, path.relative_to(root), title, text))
    return pages


def repository_url(root: Path) -> str:
    """The repository on GitHub (``[project.urls] Homepage`` in pyproject.toml)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return str(project["urls"]["Homepage"]).rstrip("/")


def relative(from_url: str, to_url: str) -> str:
    return posixpath.relpath(to_url, posixpath.dirname(from_url) or ".")


def site_markdown(
    page: Page, pages: Mapping[Path, Page], root: Path, repository: str
) -> tuple[str, list[str]]:
    """The page's Markdown with its links rewritten for the site, and the links that lead
    to no file (fenced code blocks are left as they are)."""
    problems: list[str] = []

    def link(match: re.Match[str]) -> str:
        target = match.group("target")
        if SCHEME.match(target) or target.startswith("#"):
            return match.group(0)  # another site, or this page's anchor (checked later)
        path, hash_, fragment = target.partition("#")
        resolved = (root / page.source.parent / path).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            problems.append(f"{page.source}: the link {target!r} leads to no file")
            return match.group(0)
        relative_path = resolved.relative_to(root)
        if relative_path in pages:
            href = relative(page.url, pages[relative_path].url)
        else:
            kind = "tree" if resolved.is_dir() else "blob"
            href = f"{repository}/{kind}/main/{relative_path.as_posix()}"
        return f"]({href}{hash_}{fragment})"

    parts = FENCE.split(page.text)  # text, fence, code, fence, text...
    markdown = "".join(
        MARKDOWN_LINK.sub(link, part) if index % 4 == 0 else part
        for index, part in enumerate(parts)
    )
    return markdown, problems


class References:
    """Where the reference documents what a code span names."""

    def __init__(self, view: PublicView) -> None:
        self.modules = {module.modulename: module for module in view.modules}
        self.documented = view.documented

    def find(self, text: str) -> str | None:
        """``oe_async.testing``, ``oe_async.mjpeg.MJPEGParser``, ``Name``, ``Name.member``,
        ``printer.files.upload()``... as a URL relative to the site's root (None: none)."""
        name = text.removesuffix("()")
        if not re.fullmatch(r"[A-Za-z]\w*(?:\.\w+)*", name):
            return None
        if name in self.modules:
            return _url(self.modules[name])
        start = self._start(name.split("."))
        return self._follow(*start) if start else None

    def _follow(
        self, module: pdoc.doc.Module, doc: pdoc.doc.Doc[Any], rest: list[str]
    ) -> str | None:
        """The entry of ``doc.a.b...`` (``rest``: a, b...), through the documented classes
        that properties hold and methods return."""
        for index, attr in enumerate(rest):
            member = doc.members.get(attr) if isinstance(doc, pdoc.doc.Class) else None
            if member is None or not shown(module, member):
                return None
            if index == len(rest) - 1:
                return self._member_url(module, doc, member)
            located = self._class_of(member)
            if located is None:
                return None
            module, doc = located
        return f"{_url(module)}#{doc.qualname}"

    def _start(
        self, parts: list[str]
    ) -> tuple[pdoc.doc.Module, pdoc.doc.Doc[Any], list[str]] | None:
        """The documented object a name starts with, and the attribute names after it."""
        for cut in range(len(parts) - 1, 0, -1):  # a member of a documented module
            module = self.modules.get(".".join(parts[:cut]))
            doc = module.members.get(parts[cut]) if module else None
            if module and doc is not None and shown(module, doc):
                return module, doc, parts[cut + 1 :]
        if len(parts) > 1:  # a path to a documented object: oe_async.mjpeg.MJPEGParser
            for cut in range(1, len(parts) + 1):
                obj = resolve(".".join(parts[:cut]))
                if obj is not None and id(obj) in self.documented:
                    return (*self.documented[id(obj)], parts[cut:])
        head, *rest = parts
        if head in VARIABLES and not rest:
            return None  # `printer` alone is a variable, not the class
        for module in self.modules.values():
            doc = module.members.get(VARIABLES.get(head, head))
            if doc is not None and shown(module, doc):
                return module, doc, rest
        return None

    def _class_of(self, member: pdoc.doc.Doc[Any]) -> Located | None:
        """The documented class a property holds or a method returns."""
        if isinstance(member, pdoc.doc.Variable):
            annotation = member.annotation
        elif isinstance(member, pdoc.doc.Function):
            annotation = member.signature.return_annotation
        else:
            return None
        located = self.documented.get(id(annotation))
        return located if located and isinstance(located[1], pdoc.doc.Class) else None

    def _member_url(
        self, module: pdoc.doc.Module, cls: pdoc.doc.Doc[Any], member: pdoc.doc.Doc[Any]
    ) -> str:
        """A member's entry: on the class that defines it, when the reference shows that."""
        owner = resolve(".".join(member.taken_from).rpartition(".")[0])
        if owner is not None and id(owner) in self.documented:
            module, cls = self.documented[id(owner)]
        return f"{_url(module)}#{cls.qualname}.{member.name}"


def _url(module: pdoc.doc.Module) -> str:
    return f"{module.modulename.replace('.', '/')}.html"


def link_code_spans(page_html: str, page: Page, references: References) -> str:
    """Every ``<code>`` span of a rendered page (not in a link, a heading or a code block)
    that names a documented object becomes a link to it."""
    depth = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal depth
        if match.group("code") is None:
            depth += -1 if match.group("end") else 1
            return match.group(0)
        url = None if depth else references.find(html.unescape(match.group("code")))
        if url is None:
            return match.group(0)
        return f'<a href="{relative(page.url, url)}">{match.group(0)}</a>'

    return CODE_OR_CONTAINER.sub(replace, page_html)
