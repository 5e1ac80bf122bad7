"""The checks of `make docs` (scripts/docs.py) catch what they are for.

The site itself is built by `make docs` (CI runs it); these tests hold its parts to their
job on small inputs: a link to nothing, an anchor a page lacks, a private type in a public
signature, a class an app cannot construct, a code span naming the reference. They need pdoc
(the ``docs`` extra) and skip without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pdoc", reason="pdoc (the docs extra) builds the documentation site")

import pdoc.doc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import docs_pages  # noqa: E402
import docs_public  # noqa: E402

import docs  # noqa: E402


@pytest.fixture(scope="module")
def view() -> docs_public.PublicView:
    reference = [pdoc.doc.Module.from_name(name) for name in docs.MODULES]
    view = docs_public.PublicView(reference, package="oe_async")
    assert view.apply() == []
    return view


def test_public_names_of_types_defined_in_private_modules() -> None:
    assert docs_public.public_name("aiohttp._websocket.models.WSMessage") == "aiohttp.WSMessage"
    assert docs_public.public_name("_asyncio.Task") == "asyncio.Task"
    assert docs_public.public_name("oe_async.webcam.Webcam") == "oe_async.webcam.Webcam"
    assert docs_public.public_name("oe_async._funnel.Funnel") is None  # not exported
    assert docs_public.public_name("oe_async.bambu_mqtt._BambuCommands") is None


def test_private_names_in_a_signature_are_found(view: docs_public.PublicView) -> None:
    assert view.leaks("Files(funnel: oe_async._funnel.Funnel)") == ["oe_async._funnel.Funnel"]
    assert view.leaks("class BambuSession(oe_async.bambu_mqtt._BambuCommands):") == [
        "oe_async.bambu_mqtt._BambuCommands"
    ]
    assert view.leaks("def request(self, json: Any = <_Missing.MISSING: 1>)") == [
        "_Missing",
        "_Missing.MISSING",
    ]
    assert view.leaks("MQTT(websockets: oe_async.mqtt.WebSocketOpener)") == [
        "oe_async.mqtt.WebSocketOpener"  # public module, but not in the reference
    ]
    assert view.leaks("def frames(self) -> oe_async.FrameStream:") == []
    assert view.leaks("x: oe_async.testing.Simulator = '_not_a_name'") == []
    assert view.leaks("def __init__(self, coro: Coroutine) -> asyncio.Task[None]:") == []


def test_the_reference_shows_what_an_app_can_use(view: docs_public.PublicView) -> None:
    oe_async_doc = next(module for module in view.modules if module.modulename == "oe_async")
    files = oe_async_doc.members["Files"]
    assert isinstance(files, pdoc.doc.Class)
    assert "__init__" not in [member.name for member in files.own_members]
    assert files.docstring.startswith("*An app does not construct a `Files`: ")
    assert "`oe_async.PrinterConnection.files`" in files.docstring.partition("\n")[0]
    session = oe_async_doc.members["BambuSession"]
    assert isinstance(session, pdoc.doc.Class)
    assert "pause" in [member.name for member in session.own_members]  # from a private base
    assert session.bases == []
    init = oe_async_doc.members["HTTPStatusError"].members["__init__"]  # type: ignore[attr-defined]
    assert "secrets: Iterable[str] | None = None" in str(init.signature)  # no KnownSecrets


def test_links_to_nothing_and_missing_anchors_are_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "index.html").write_text(
        '<h2 id="errors">E</h2><a href="docs/a.html#there">ok</a><a href="#errors">ok</a>'
        '<a href="docs/a.html#gone">anchor</a><a href="docs/b.html">page</a>'
        '<a href="https://example.com/x">elsewhere</a>',
        encoding="utf-8",
    )
    (tmp_path / "docs" / "a.html").write_text(
        '<p id="there"></p><a href="../index.html#errors">back</a>', encoding="utf-8"
    )
    assert docs.broken_links(docs.parse_pages(tmp_path)) == [
        "index.html: the link 'docs/a.html#gone': docs/a.html has no #gone",
        "index.html: the link 'docs/b.html' leads to no page",
    ]


def test_guide_links_are_rewritten_for_the_site() -> None:
    pages = docs_pages.read_pages(ROOT, docs.FRONT_PAGE, docs.GUIDES)
    by_source = {page.source: page for page in pages}
    page = docs_pages.Page(
        "docs.example",
        Path("docs/example.md"),
        "Example",
        "[w](webcams.md#frames) [r](../README.md#errors) [e](../examples/mjpeg_proxy.py)"
        " [x](missing.md) [s](https://example.com/a.md)\n```python\n[k](nothing.md)\n```\n",
    )
    markdown, problems = docs_pages.site_markdown(page, by_source, ROOT, "https://github.com/o/r")
    assert "[w](webcams.html#frames)" in markdown
    assert "[r](../index.html#errors)" in markdown
    assert "[e](https://github.com/o/r/blob/main/examples/mjpeg_proxy.py)" in markdown
    assert "[s](https://example.com/a.md)" in markdown
    assert "[k](nothing.md)" in markdown  # code is left alone
    assert problems == ["docs/example.md: the link 'missing.md' leads to no file"]


def test_code_spans_link_to_the_reference(view: docs_public.PublicView) -> None:
    references = docs_pages.References(view)
    page = docs_pages.Page("docs.example", Path("docs/example.md"), "Example", "")
    html = docs_pages.link_code_spans(
        "<p><code>PrinterConnection</code> <code>printer.webcam.frames()</code>"
        " <code>err.message</code> <code>oe_async.testing.Simulator</code>"
        " <code>timeout</code></p><h2><code>Frame</code></h2>"
        '<a href="x"><code>Frame</code></a><pre><code>Frame</code></pre>',
        page,
        references,
    )
    assert '<a href="../oe_async.html#PrinterConnection"><code>PrinterConnection</code></a>' in html
    assert '<a href="../oe_async.html#Webcam.frames"><code>printer.webcam' in html
    assert '<a href="../oe_async.html#OctoEverywhereError.message"><code>err' in html
    assert '<a href="../oe_async/testing.html#Simulator"><code>oe_async.testing' in html
    assert "<code>timeout</code></p>" in html  # names nothing documented
    assert html.count("<code>Frame</code>") == 3  # not in a heading, a link or a code block
    assert "#Frame" not in html
