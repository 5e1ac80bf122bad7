r"""A sans-I/O MJPEG (``multipart/x-mixed-replace``) frame parser. No I/O, no asyncio.

Feed it bytes as they arrive; it returns complete frames::

    parser = MJPEGParser.from_content_type(response.headers["Content-Type"])
    for chunk in chunks:
        for frame in parser.feed(chunk):
            show(frame.data)
    for frame in parser.close():  # end of stream
        show(frame.data)

Fast path: a part with ``Content-Length`` is sliced out of the fed chunks, never scanned. A
part without it is scanned for the next boundary line with ``bytes.find`` (C speed); a final
part at the end of the stream is kept when it is a whole JPEG (SOI ... EOI). Frame bytes are
copied at most once (a join of views into the fed chunks), and not at all when one fed chunk
is exactly a part's body (an adapter that reads ``body_needed`` bytes with one
``readexactly``); boundaries and part headers go through a small, bounded window.

Frame-rate cap: with ``min_interval`` set, the parser delivers frames on a schedule of one
per interval with one frame of slack (a generic cell-rate gate), so a camera that runs at
the cap is not halved by jitter, and frames it drops are counted in ``skipped`` without a
byte being copied.

Tolerated, because real camera servers do it: the boundary quoted, with spaces around
``=``, with or without a leading ``--``, followed by more parameters; parts that start with
``--b``, a bare ``b`` or ``\\r\\n--b``; LF-only line ends; header names in any case; a first
frame with no boundary before it (its headers, or the JPEG itself, first); ``Content-Length``
glued to the next boundary, empty, or duplicated; a stream that simply stops (a normal end);
``X-Timestamp`` part headers. Everything is bounded: a frame by ``max_frame_size``, part
headers by ``max_header_size``, junk between parts by ``max_frame_size``; past a bound the
parser raises :class:`MJPEGError` instead of buffering more.

The package keeps one concept per module: the frames and the camera's transform
(``_frame``), the boundary (from ``Content-Type``, and found in the stream: ``_boundary``),
part headers (``_headers``), the body of the part being read (``_body``) and the state
machine that drives them (``_parser``). Import the names from here.
"""

from __future__ import annotations

from ._boundary import boundary_from_content_type
from ._frame import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_SIZE,
    Frame,
    MJPEGError,
    parse_transform,
    transform_header,
)
from ._frame import EOI as EOI
from ._frame import SOI as SOI
from ._parser import MJPEGParser

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "Frame",
    "MJPEGError",
    "MJPEGParser",
    "boundary_from_content_type",
    "parse_transform",
    "transform_header",
]
