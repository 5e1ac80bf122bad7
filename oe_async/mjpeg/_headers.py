"""Part headers: ``Content-Type``, ``Content-Length`` and ``X-Timestamp`` of one MJPEG part."""

from __future__ import annotations

import math
import re
from typing import Final

import attrs

from ._frame import SOI, MJPEGError

#: Longest plausible Content-Length value; anything longer is over every frame limit.
_MAX_LENGTH_DIGITS: Final = 15
#: One header line: name, value (surrounding blanks and a CR dropped).
_HEADER_LINE: Final = re.compile(rb"^[ \t]*([^:\r\n]+?)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.M)
_JPEG: Final = "image/jpeg"
_LF: Final = ord("\n")
#: The part headers nearly every camera sends (mjpg-streamer, ustreamer, aiohttp-based
#: relays), in one C-speed match; anything else goes through the general header parser.
_COMMON_HEADERS: Final = re.compile(
    rb"Content-Type: ([!-~]+)\r\nContent-Length: ([0-9]{1,15})\r\n"
    rb"(?:X-Timestamp: ([0-9]{1,20}(?:\.[0-9]{1,12})?)\r\n)?"
)


@attrs.define(slots=True)
class PartHeaders:
    """What a part's headers say about its body."""

    length: int | None = None
    content_type: str = "image/jpeg"
    timestamp: float | None = None


def read_part_headers(
    w: bytes, i: int, *, max_header_size: int, max_frame_size: int
) -> tuple[PartHeaders, int] | None:
    """The part headers at ``i`` and where the body starts; None until the block is whole.

    Raises:
        MJPEGError: the headers are larger than ``max_header_size``, or declare a
            ``Content-Length`` over ``max_frame_size``.

    """
    if w.startswith(SOI, i):  # no headers at all: the JPEG follows the boundary line
        return PartHeaders(), i
    if w.startswith(b"\n", i) or w.startswith(b"\r\n", i):
        return PartHeaders(), i + (1 if w[i] == _LF else 2)
    ends = [e for e in (w.find(b"\n\n", i), w.find(b"\n\r\n", i)) if e >= 0]
    if not ends:
        if len(w) - i > max_header_size:
            raise MJPEGError(f"part headers larger than max_header_size ({max_header_size})")
        return None
    stop = min(ends)
    if stop - i > max_header_size:
        raise MJPEGError(f"part headers larger than max_header_size ({max_header_size})")
    return parse_headers(w[i:stop], max_frame_size), stop + (
        2 if w.startswith(b"\n\n", stop) else 3
    )


def parse_headers(block: bytes, max_frame_size: int) -> PartHeaders:
    """The headers of one part (``block``: its header lines, without the blank line).

    Raises:
        MJPEGError: a declared ``Content-Length`` over ``max_frame_size``.

    """
    common = _COMMON_HEADERS.fullmatch(block)
    if common is not None:
        content_type, digits, timestamp = common.groups()
        length = int(digits)  # at most 15 digits: the pattern says so
        if length > max_frame_size:
            content_length([digits], max_frame_size)  # raises the same error as the general path
        return PartHeaders(
            length,
            _JPEG if content_type == b"image/jpeg" else content_type.decode("latin-1"),
            None if timestamp is None else float(timestamp),
        )
    headers = PartHeaders()
    lengths: list[bytes] = []
    for name, value in _HEADER_LINE.findall(block):
        key = name.lower()
        if key == b"content-length":
            lengths += (piece.strip() for piece in value.split(b","))
        elif key == b"content-type" and value:
            headers.content_type = value.decode("latin-1")
        elif key == b"x-timestamp":
            headers.timestamp = _seconds(value)
    headers.length = content_length(lengths, max_frame_size)
    return headers


def content_length(values: list[bytes], max_frame_size: int) -> int | None:
    """One agreed length, or None (empty, unparseable or contradictory: scan instead)."""
    if len(values) != 1:  # the common case, one value, skips the set
        values = [v for v in values if v]
    if not values or not all(v.isdigit() for v in values):
        return None
    if any(len(v) > _MAX_LENGTH_DIGITS for v in values):
        raise MJPEGError(
            f"declared Content-Length is larger than max_frame_size ({max_frame_size})"
        )
    if len(values) == 1:
        length = int(values[0])
    else:
        lengths = {int(v) for v in values}
        if len(lengths) != 1:
            return None
        length = lengths.pop()
    if length > max_frame_size:
        raise MJPEGError(
            f"declared Content-Length {length} is larger than max_frame_size ({max_frame_size})"
        )
    return length


def looks_like_header_line(w: bytes, i: int) -> bool:
    """True when the line at ``i`` looks like ``Name: value`` (a first part with no boundary)."""
    newline = w.find(b"\n", i, i + 256)
    colon = w.find(b":", i, newline if newline >= 0 else i + 256)
    return colon > i and w[i : i + 1].isalpha()


def _seconds(value: bytes) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None
