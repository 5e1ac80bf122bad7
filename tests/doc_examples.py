"""The Python examples of README.md and docs/*.md, for the tests that run them.

A guide holds two kinds of ``python`` blocks: *recipes* (imports and functions taking a
`PrinterConnection`: all of a guide's recipes run in one namespace, as a reader pastes them)
and *snippets* (statements with a top-level ``await``, using names such as ``printer`` that
the reader has: a test gives them). Every block is found by a marker, a piece of its text;
``tests/test_docs.py`` checks that every block of every page is run by a test.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Read once at import time (not on the event loop).
PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}


def blocks(page: str) -> list[str]:
    """The ``python`` blocks of a page (``README.md``, ``docs/webcams.md``)."""
    return re.findall(r"```python\n(.*?)```", PAGES[page], flags=re.S)


def block(page: str, marker: str) -> str:
    """The one block of ``page`` that contains ``marker``."""
    found = [text for text in blocks(page) if marker in text]
    assert len(found) == 1, f"{page}: {len(found)} python blocks contain {marker!r}"
    return found[0]


def is_snippet(text: str) -> bool:
    """Whether a block has a top-level ``await`` (``async with``, ``async for``)."""
    try:
        compile(text, "<block>", "exec")
    except SyntaxError:
        return True
    return False


def recipes(page: str) -> dict[str, Any]:
    """The namespace of all of ``page``'s recipes, run in order (snippets left out)."""
    namespace: dict[str, Any] = {}
    for text in blocks(page):
        if not is_snippet(text):
            exec(compile(text, page, "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace


async def run(page: str, text: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run one block (a snippet or recipes) in ``namespace``; the namespace after it."""
    code = compile(text, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        await eval(code, namespace)  # noqa: S307 (our own docs)
    else:
        exec(code, namespace)  # noqa: S102 (our own docs)
    return namespace
