r"""The multipart boundary: read from ``Content-Type``, and found in the stream.

A boundary line is up to four dashes, the boundary, then a line end, ``--``, whitespace or
the end of the data, at the start of a line. Once the server's dashes are known (learned
from its first boundary line) the search is one ``bytes.find`` for the longer needle
``"\n" + dashes + boundary``.
"""

from __future__ import annotations

import re
from typing import Final

from ._frame import MJPEGError

#: Dashes tolerated before the boundary on a boundary line (``--b``, ``----b``).
MAX_DASHES: Final = 4
#: The longest boundary learned from the stream itself (no ``boundary=`` in the header).
MAX_LEARNED_BOUNDARY: Final = 200
_DASH: Final = ord("-")
_LF: Final = ord("\n")


def checked_boundary(boundary: bytes | str | None) -> bytes | None:
    """A boundary given by the caller, without its leading dashes (None: learn it).

    Raises:
        MJPEGError: nothing is left of it.

    """
    if isinstance(boundary, str):
        boundary = boundary.encode("ascii")
    if boundary is not None:
        boundary = boundary.lstrip(b"-")
        if not boundary:
            raise MJPEGError("the multipart boundary is empty")
    return boundary


def boundary_from_content_type(content_type: str | None) -> bytes | None:
    """The multipart boundary in a ``Content-Type`` value, tolerant of server quirks.

    Accepts ``boundary=b``, ``boundary="b"``, ``boundary = b``, a leading ``--`` and more
    parameters after it. Returns the boundary without leading dashes, or None.
    """
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, sep, value = param.partition("=")
        if not sep or name.strip().lower() != "boundary":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        value = value.strip().lstrip("-")
        if value and value.isascii():
            return value.encode("ascii")
    return None


def fast_pattern(core: bytes | None) -> re.Pattern[bytes] | None:
    """Whitespace, a boundary line, header lines and the blank line, in one C-speed match.

    This covers every well-formed part boundary; anything else (partial data, a closing
    boundary, quirks) falls back to the general state machine.
    """
    if core is None:
        return None
    return re.compile(
        rb"[ \t\r\n]*(-{0,4})" + re.escape(core) + rb"[ \t]*\r?\n((?:[^\r\n]+\r?\n)*?)\r?\n"
    )


def skip_dashes(w: bytes, i: int) -> int:
    """Where the boundary starts after the (at most four) dashes at ``i``."""
    j = i
    while j < len(w) and w[j] == _DASH and j - i < MAX_DASHES:
        j += 1
    return j


def boundary_at(w: bytes, i: int, core: bytes | None) -> bool:
    """True when a boundary line (or, with no ``core`` yet, a learnable one) starts at ``i``."""
    if core is None:
        return w.startswith(b"--", i)
    return w.startswith(core, skip_dashes(w, i))


def learn_boundary(line: bytes) -> bytes | None:
    """The boundary of the stream's first boundary line (``--b``); None if it is not one."""
    learned = line.strip().lstrip(b"-")
    if not learned or len(learned) > MAX_LEARNED_BOUNDARY or not learned.isascii():
        return None
    return learned


def read_boundary_line(w: bytes, i: int, core: bytes) -> tuple[int, int] | None:
    """The boundary line at ``i``: ``(where its dashes end, where what follows starts)``.

    What follows is the part headers (after the line's end), or ``--`` for the closing
    boundary. ``(_, -1)``: no boundary line here; None: more bytes are needed to tell.
    """
    j = skip_dashes(w, i)
    after = j + len(core)
    if len(w) - after < 2:
        return None
    if not w.startswith(core, j):
        return j, -1
    if w.startswith(b"--", after):
        return j, after
    newline = w.find(b"\n", after)
    return None if newline < 0 else (j, newline + 1)


def find_straddling(tail: bytes, head: bytes, core: bytes, dashes: bytes | None) -> int | None:
    """Where, in ``tail`` (the body so far), a boundary line that ``head`` continues starts."""
    seam = tail + head
    found = find_boundary(seam, 0, len(seam), core, dashes, line_start_at_start=False)
    return found if found is not None and found < len(tail) else None


def find_boundary(
    data: bytes,
    start: int,
    end: int,
    core: bytes | None,
    dashes: bytes | None,
    *,
    line_start_at_start: bool,
) -> int | None:
    r"""Where a boundary line starts in ``data[start:end]``, or None.

    It must start a line: after ``\\n``, or at ``start`` when that is known to be a line
    start (a body's first byte, for a ``Content-Length`` glued to the next boundary).
    ``core``: the boundary (None: not known yet, nothing is found); ``dashes``: the
    server's, once known (one long needle), else None.
    """
    if core is None:
        return None
    if dashes is not None:
        return _find_known_boundary(
            data, start, end, dashes + core, line_start_at_start=line_start_at_start
        )
    index = data.find(core, start, end)
    while index >= 0:
        line = index
        while line > start and data[line - 1] == _DASH and index - line < MAX_DASHES:
            line -= 1
        starts_line = (line > start and data[line - 1] == _LF) or (
            line == start and line_start_at_start
        )
        after = index + len(core)
        if starts_line and (after >= end or data[after] in b"\r\n- \t"):
            return line
        index = data.find(core, index + 1, end)
    return None


def _find_known_boundary(
    data: bytes, start: int, end: int, line: bytes, *, line_start_at_start: bool
) -> int | None:
    """:func:`find_boundary` once the server's dashes are known: ``line`` is dashes + core."""
    if line_start_at_start and data.startswith(line, start, end):
        after = start + len(line)
        if after >= end or data[after] in b"\r\n- \t":
            return start
    needle = b"\n" + line
    index = data.find(needle, start, end)
    while index >= 0:
        after = index + len(needle)
        if after >= end or data[after] in b"\r\n- \t":
            return index + 1
        index = data.find(needle, index + 1, end)
    # A line end at the very end of the window may be followed by a boundary later.
    return None
