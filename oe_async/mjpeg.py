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
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections.abc import Callable
from typing import Final

import attrs

from .errors import OctoEverywhereError

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

DEFAULT_MAX_FRAME_SIZE: Final = 8 * 1024 * 1024
DEFAULT_MAX_HEADER_SIZE: Final = 8 * 1024

SOI: Final = b"\xff\xd8"
EOI: Final = b"\xff\xd9"
_WHITESPACE: Final = b" \t\r\n"
_NEWLINES: Final = b"\r\n"
_DASH: Final = ord("-")
_LF: Final = ord("\n")
#: Dashes tolerated before the boundary on a boundary line (``--b``, ``----b``).
_MAX_DASHES: Final = 4
#: The first window tried in the control states: part headers are ~100 bytes.
_FIRST_WINDOW: Final = 512
#: Longest plausible Content-Length value; anything longer is over every frame limit.
_MAX_LENGTH_DIGITS: Final = 15
_MAX_LEARNED_BOUNDARY: Final = 200
#: One header line: name, value (surrounding blanks and a CR dropped).
_HEADER_LINE: Final = re.compile(rb"^[ \t]*([^:\r\n]+?)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.M)
_JPEG: Final = "image/jpeg"
#: The part headers nearly every camera sends (mjpg-streamer, ustreamer, aiohttp-based
#: relays), in one C-speed match; anything else goes through the general header parser.
_COMMON_HEADERS: Final = re.compile(
    rb"Content-Type: ([!-~]+)\r\nContent-Length: ([0-9]{1,15})\r\n"
    rb"(?:X-Timestamp: ([0-9]{1,20}(?:\.[0-9]{1,12})?)\r\n)?"
)


class MJPEGError(OctoEverywhereError):
    """The stream cannot be parsed safely: a size bound was passed or no boundary was found."""


#: ``x-oe-webcam-transform`` rotations, clockwise degrees (as ``WebcamInfo.rotation``).
_ROTATIONS: Final = (0, 90, 180, 270)


def parse_transform(value: str | None) -> tuple[bool, bool, int]:
    """``(flip_h, flip_v, rotation)`` from an ``x-oe-webcam-transform`` header value.

    The OctoEverywhere plugin sends ``none``, or space-separated tokens ``fliph``,
    ``flipv`` and ``rotate=<degrees>`` (``"fliph rotate=90 "``), the same settings the
    plugin API's ``webcam/list`` reports as ``FlipH``, ``FlipV`` and ``Rotation``. Parsing is
    lenient: any case, commas as separators, ``rotate90``; unknown tokens and rotations
    other than 0/90/180/270 are ignored. None or an empty value means no transform.
    """
    flip_h = flip_v = False
    rotation = 0
    if not value:
        return flip_h, flip_v, rotation
    for word in value.lower().replace(",", " ").split():
        if word == "fliph":
            flip_h = True
        elif word == "flipv":
            flip_v = True
        elif word.startswith("rotate"):
            digits = word.removeprefix("rotate").lstrip("=:").strip()
            if digits.isdigit() and int(digits) % 360 in _ROTATIONS:
                rotation = int(digits) % 360
    return flip_h, flip_v, rotation


def transform_header(*, flip_h: bool, flip_v: bool, rotation: int) -> str:
    """The ``x-oe-webcam-transform`` value the plugin sends for these settings."""
    tokens = [name for name, on in (("fliph", flip_h), ("flipv", flip_v)) if on]
    if rotation % 360:
        tokens.append(f"rotate={rotation % 360}")
    return " ".join(tokens) if tokens else "none"


@attrs.frozen(kw_only=True, slots=True)
class Frame:
    """One image from a camera stream, or a snapshot.

    Attributes:
        data: the image bytes (JPEG for every camera seen so far).
        index: position in the stream, continuous across stream renewals.
        received_at: ``time.monotonic()`` when the frame was complete.
        content_type: the part's ``Content-Type`` (default ``image/jpeg``).
        timestamp: the part's ``X-Timestamp`` in seconds, when the server sent one.
        transform: the relay's ``x-oe-webcam-transform`` header as sent, if any: ``none``
            or space-separated ``fliph``, ``flipv``, ``rotate=<degrees>`` (see
            :func:`parse_transform`). Read it through :attr:`flip_h`, :attr:`flip_v` and
            :attr:`rotation`, which mean what the same-named fields of
            :class:`oe_async.WebcamInfo` (``printer.plugin.webcams()``) mean for the
            same camera; the rotation is clockwise (the plugin reports OctoPrint's
            counter-clockwise ``rotate90`` as 270).

    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    index: int
    received_at: float
    content_type: str = "image/jpeg"
    timestamp: float | None = None
    transform: str | None = None

    @property
    def flip_h(self) -> bool:
        """Mirror the image horizontally (the user's webcam setting)."""
        return parse_transform(self.transform)[0]

    @property
    def flip_v(self) -> bool:
        """Flip the image vertically (the user's webcam setting)."""
        return parse_transform(self.transform)[1]

    @property
    def rotation(self) -> int:
        """Rotate the image clockwise by 0, 90, 180 or 270 degrees."""
        return parse_transform(self.transform)[2]


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


def _fast_pattern(core: bytes | None) -> re.Pattern[bytes] | None:
    """Whitespace, a boundary line, header lines and the blank line, in one C-speed match.

    This covers every well-formed part boundary; anything else (partial data, a closing
    boundary, quirks) falls back to the general state machine.
    """
    if core is None:
        return None
    return re.compile(
        rb"[ \t\r\n]*(-{0,4})" + re.escape(core) + rb"[ \t]*\r?\n((?:[^\r\n]+\r?\n)*?)\r?\n"
    )


def _seconds(value: bytes) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


class _State(enum.Enum):
    START = enum.auto()  # nothing recognised yet
    PREAMBLE = enum.auto()  # skipping junk until a boundary line
    DELIMITER = enum.auto()  # at a boundary line
    HEADERS = enum.auto()  # reading part headers
    BODY_LENGTH = enum.auto()  # reading a body of known length
    BODY_SCAN = enum.auto()  # reading a body up to the next boundary
    AFTER_BODY = enum.auto()  # between a body and the next boundary
    END = enum.auto()  # after the closing boundary


_BODY_STATES: Final = frozenset({_State.BODY_LENGTH, _State.BODY_SCAN})
#: Blanks and line ends between parts.
_SPACE: Final = re.compile(rb"[ \t\r\n]*")


@attrs.define(slots=True)
class _PartHeaders:
    length: int | None = None
    content_type: str = "image/jpeg"
    timestamp: float | None = None


class MJPEGParser:
    """Incremental MJPEG parser; see the module docstring.

    Args:
        boundary: the multipart boundary (leading dashes optional); None to learn it from
            the first boundary line of the stream.
        max_frame_size: the largest frame accepted, and the most junk skipped in a row.
        max_header_size: the largest block of part headers accepted.
        transform: copied onto every frame (the relay's ``x-oe-webcam-transform``).
        first_index: the index given to the first frame.
        clock: the monotonic clock for ``received_at`` (injectable for tests).
        min_interval: seconds between delivered frames on average (``1 / max_fps``); 0
            delivers every frame.

    Attributes:
        skip_until: frames completed before this ``clock()`` value are counted in
            ``skipped`` but never materialised (no bytes copied). With ``min_interval``
            the parser moves it itself: after a frame delivered at ``t`` it becomes
            ``max(skip_until + min_interval, t)``, a schedule with one frame of slack, so
            the delivered rate is ``min(source rate, 1 / min_interval)`` however the
            frames jitter, and a burst after a stall passes at most two frames at once.
        min_interval: as the argument; may be changed at any time.
        skipped: frames dropped by ``skip_until``.
        truncated: partial frames dropped at the end of the stream.

    """

    def __init__(
        self,
        boundary: bytes | str | None = None,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        transform: str | None = None,
        first_index: int = 0,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.0,
    ) -> None:
        if isinstance(boundary, str):
            boundary = boundary.encode("ascii")
        if boundary is not None:
            boundary = boundary.lstrip(b"-")
            if not boundary:
                raise MJPEGError("the multipart boundary is empty")
        if max_frame_size < 1 or max_header_size < 1:
            raise MJPEGError("max_frame_size and max_header_size must be positive")
        if not min_interval >= 0:
            raise MJPEGError("min_interval must not be negative")
        self._core: bytes | None = boundary
        self._fast: re.Pattern[bytes] | None = _fast_pattern(boundary)
        # The dashes this server writes before the boundary, learned from its first boundary
        # line: later scans then look for the longer, faster needle "\n" + dashes + boundary.
        self._dashes: bytes | None = None
        self.max_frame_size = max_frame_size
        self.max_header_size = max_header_size
        self.transform = transform
        self._clock = clock
        self._next_index = first_index
        self._state = _State.START
        self._small = bytearray()  # unconsumed control bytes (bounded)
        # The current body: views into fed chunks, or a whole fed chunk (never copied).
        self._parts: list[memoryview | bytes] = []
        self._body_size = 0
        self._tail = b""  # BODY_SCAN: the body's last few bytes
        self._remaining = 0  # BODY_LENGTH: bytes still to come
        self._junk = 0  # bytes skipped since the last recognised structure
        self._headers = _PartHeaders()
        self.skip_until: float = -math.inf
        self.min_interval: float = min_interval
        self.skipped: int = 0
        self.truncated: int = 0

    @classmethod
    def from_content_type(
        cls,
        content_type: str | None,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        transform: str | None = None,
        first_index: int = 0,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.0,
    ) -> MJPEGParser:
        """A parser for a response with this ``Content-Type`` (boundary optional)."""
        return cls(
            boundary_from_content_type(content_type),
            max_frame_size=max_frame_size,
            max_header_size=max_header_size,
            transform=transform,
            first_index=first_index,
            clock=clock,
            min_interval=min_interval,
        )

    @property
    def boundary(self) -> bytes | None:
        """The boundary in use (without leading dashes), once known."""
        return self._core

    @property
    def next_index(self) -> int:
        """The index the next frame will get."""
        return self._next_index

    @property
    def body_needed(self) -> int:
        """Bytes of a ``Content-Length`` body still to come (0 outside such a body).

        An adapter may read exactly this many bytes and :meth:`feed` them as one chunk:
        when none of the body arrived before, that chunk becomes the frame's ``data``
        without a copy.
        """
        return self._remaining if self._state is _State.BODY_LENGTH else 0

    @property
    def will_skip(self) -> bool:
        """True when a frame completed now would be dropped by ``skip_until``."""
        return self._clock() < self.skip_until

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame or header (for memory checks)."""
        return self._body_size + len(self._small)

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Parse more of the stream; return the frames it completed (possibly none)."""
        if self._state is _State.END or not data:
            return []
        chunk = data if isinstance(data, bytes) else bytes(data)
        frames: list[Frame] = []
        self._feed(chunk, frames)
        return frames

    def close(self) -> list[Frame]:
        """Signal the end of the stream; return a last frame if it is complete.

        A stream that stops without a closing boundary is a normal end. A body cut short
        is dropped and counted in ``truncated``; this never raises.
        """
        frames: list[Frame] = []
        if self._state is _State.BODY_SCAN and self._body_size:
            self._trim_trailing_newlines()
            if self._is_whole_jpeg():
                self._emit(frames)
            else:
                self.truncated += 1
        elif self._state is _State.BODY_LENGTH and self._body_size:
            self.truncated += 1
        self._reset_body()
        self._small.clear()
        self._state = _State.END
        return frames

    # ------------------------------------------------------------------ dispatch

    def _feed(self, chunk: bytes, frames: list[Frame]) -> None:
        view = memoryview(chunk)
        pos = 0
        end = len(chunk)
        while pos < end:
            # Identity tests, not set membership: an Enum hashes its name in Python code.
            state = self._state
            if state is _State.BODY_LENGTH:
                pos = self._feed_length(chunk, view, pos, end, frames)
            elif state is _State.BODY_SCAN:
                pos = self._feed_scan(chunk, view, pos, end, frames)
            elif state is _State.END:
                return
            else:
                if (state is _State.AFTER_BODY or state is _State.START) and not self._small:
                    # Line ends between parts are skipped in place: held back in the control
                    # window, the CRLF that ends a chunk sent the next part's headers
                    # down the slow path.
                    pos = _SPACE.match(chunk, pos).end()  # type: ignore[union-attr]
                    if pos == end:
                        return
                pos = self._feed_fast(chunk, pos, end) or self._feed_control(
                    chunk, pos, end, frames
                )

    def _feed_fast(self, chunk: bytes, pos: int, end: int) -> int:
        """The common case between two parts, matched in place; 0 when it does not apply."""
        fast = self._fast
        state = self._state
        if (
            fast is None
            or self._small
            or not (
                state is _State.AFTER_BODY
                or state is _State.START
                or state is _State.PREAMBLE
                or state is _State.DELIMITER
            )
        ):
            return 0
        match = fast.match(chunk, pos, min(end, pos + self.max_header_size))
        if match is None:
            return 0
        if self._dashes is None:
            self._dashes = match.group(1)
        self._junk = 0
        self._begin_body(self._parse_headers(match.group(2)))
        return match.end()

    def _feed_control(self, chunk: bytes, pos: int, end: int, frames: list[Frame]) -> int:
        """Run the control states over ``small + chunk[pos:...]``; return the new ``pos``."""
        limit = self.max_header_size + self._overlap() + 2
        held = len(self._small)
        available = end - pos
        take = min(available, max(_FIRST_WINDOW - held, 0))
        while True:
            window = bytes(self._small) + chunk[pos : pos + take]
            consumed, need_more = self._control(window)
            if not need_more or take == available or len(window) >= limit:
                break
            take = min(available, max(limit - held, 0))  # one retry with the full window
        if need_more and consumed == 0 and take == 0:
            self._check_small(pos, force=True)
        if consumed < held:
            del self._small[:consumed]
            if self._state in _BODY_STATES or self._state is _State.END:
                # Body bytes that were held back with the headers: feed them as a chunk.
                rest = bytes(self._small)
                self._small.clear()
                if self._state is not _State.END:
                    self._feed(rest, frames)
            elif need_more:
                self._small += chunk[pos : pos + take]
                return self._check_small(pos + take)
            return pos
        self._small.clear()
        pos += consumed - held
        if need_more and self._state not in _BODY_STATES:
            self._small += window[consumed:]
            return self._check_small(pos + (len(window) - consumed))
        return pos

    def _check_small(self, pos: int, *, force: bool = False) -> int:
        if force or len(self._small) > self.max_header_size + self._overlap() + 2:
            what = "part headers" if self._state is _State.HEADERS else "boundary line"
            self._small.clear()
            raise MJPEGError(f"{what} larger than max_header_size ({self.max_header_size})")
        return pos

    def _overlap(self) -> int:
        return len(self._core or b"") + _MAX_DASHES + 1

    # ------------------------------------------------------------------ control states

    def _control(self, w: bytes) -> tuple[int, bool]:  # noqa: PLR0911, PLR0912 (a state machine)
        """Advance through control states over window ``w``; return (consumed, need_more)."""
        i = 0
        n = len(w)
        while True:
            state = self._state
            if state in _BODY_STATES or state is _State.END:
                return i, False
            if state is _State.START or state is _State.AFTER_BODY:
                while i < n and w[i] in _WHITESPACE:
                    i += 1
                if n - i < 2:
                    return i, True
                if w.startswith(SOI, i):  # a JPEG with no part headers before it
                    self._begin_body(_PartHeaders())
                    return i, False
                if self._boundary_at(w, i):
                    self._state = _State.DELIMITER
                    continue
                if w.find(b"\n", i) < 0 and n - i < _FIRST_WINDOW:
                    return i, True  # decide on a whole first line
                if state is _State.START and self._looks_like_header_line(w, i):
                    self._state = _State.HEADERS
                else:
                    self._state = _State.PREAMBLE
            elif state is _State.PREAMBLE:
                found = self._find_boundary(w, i, n, line_start_at_start=True)
                if found is not None:
                    self._junk += found - i
                    i = found
                    self._state = _State.DELIMITER
                else:
                    keep = min(n - i, self._overlap())
                    self._junk += n - i - keep
                    if self._junk > self.max_frame_size:
                        raise MJPEGError(
                            f"no multipart boundary in {self._junk} bytes "
                            f"(limit {self.max_frame_size})"
                        )
                    return n - keep, True
            elif state is _State.DELIMITER:
                step = self._delimiter(w, i)
                if step is None:
                    return i, True
                i = step
            else:  # HEADERS
                step = self._part_headers(w, i)
                if step is None:
                    return i, True
                i = step

    def _boundary_at(self, w: bytes, i: int) -> bool:
        """True when a boundary line (or a learnable one) starts at ``i``."""
        if self._core is None:
            return w.startswith(b"--", i)
        j = i
        while j < len(w) and w[j] == _DASH and j - i < _MAX_DASHES:
            j += 1
        return w.startswith(self._core, j)

    def _delimiter(self, w: bytes, i: int) -> int | None:  # noqa: PLR0911 (one exit per case)
        """Consume a boundary line at ``i``; return where the part headers start."""
        newline = w.find(b"\n", i)
        if self._core is None:
            if newline < 0:
                return None
            learned = w[i:newline].strip().lstrip(b"-")
            if not learned or len(learned) > _MAX_LEARNED_BOUNDARY or not learned.isascii():
                self._state = _State.PREAMBLE
                return i + 1
            self._core = learned
            self._fast = _fast_pattern(learned)
        j = i
        while j < len(w) and w[j] == _DASH and j - i < _MAX_DASHES:
            j += 1
        after = j + len(self._core)
        if len(w) - after < 2:
            return None
        if not w.startswith(self._core, j):
            self._state = _State.PREAMBLE  # not a boundary after all: skip a byte
            self._junk += 1
            return i + 1
        if self._dashes is None:
            self._dashes = w[i:j]
        if w.startswith(b"--", after):
            self._state = _State.END  # the closing boundary
            return after + 2
        newline = w.find(b"\n", after)
        if newline < 0:
            return None
        self._junk = 0
        self._state = _State.HEADERS
        return newline + 1

    def _part_headers(self, w: bytes, i: int) -> int | None:
        """Parse part headers at ``i``; return where the body starts."""
        if w.startswith(SOI, i):  # no headers at all: the JPEG follows the boundary line
            self._begin_body(_PartHeaders())
            return i
        if w.startswith(b"\n", i) or w.startswith(b"\r\n", i):
            self._begin_body(_PartHeaders())
            return i + (1 if w[i] == _LF else 2)
        ends = [e for e in (w.find(b"\n\n", i), w.find(b"\n\r\n", i)) if e >= 0]
        if not ends:
            if len(w) - i > self.max_header_size:
                raise MJPEGError(
                    f"part headers larger than max_header_size ({self.max_header_size})"
                )
            return None
        stop = min(ends)
        if stop - i > self.max_header_size:
            raise MJPEGError(f"part headers larger than max_header_size ({self.max_header_size})")
        self._begin_body(self._parse_headers(w[i:stop]))
        return stop + (2 if w.startswith(b"\n\n", stop) else 3)

    def _parse_headers(self, block: bytes) -> _PartHeaders:
        common = _COMMON_HEADERS.fullmatch(block)
        if common is not None:
            content_type, digits, timestamp = common.groups()
            length = int(digits)  # at most 15 digits: the pattern says so
            if length > self.max_frame_size:
                self._content_length([digits])  # raises the same error as the general path
            return _PartHeaders(
                length,
                _JPEG if content_type == b"image/jpeg" else content_type.decode("latin-1"),
                None if timestamp is None else float(timestamp),
            )
        headers = _PartHeaders()
        lengths: list[bytes] = []
        for name, value in _HEADER_LINE.findall(block):
            key = name.lower()
            if key == b"content-length":
                lengths += (piece.strip() for piece in value.split(b","))
            elif key == b"content-type" and value:
                headers.content_type = value.decode("latin-1")
            elif key == b"x-timestamp":
                headers.timestamp = _seconds(value)
        headers.length = self._content_length(lengths)
        return headers

    def _content_length(self, values: list[bytes]) -> int | None:
        """One agreed length, or None (empty, unparseable or contradictory: scan instead)."""
        if len(values) != 1:  # the common case, one value, skips the set
            values = [v for v in values if v]
        if not values or not all(v.isdigit() for v in values):
            return None
        if any(len(v) > _MAX_LENGTH_DIGITS for v in values):
            raise MJPEGError(
                f"declared Content-Length is larger than max_frame_size ({self.max_frame_size})"
            )
        if len(values) == 1:
            length = int(values[0])
        else:
            lengths = {int(v) for v in values}
            if len(lengths) != 1:
                return None
            length = lengths.pop()
        if length > self.max_frame_size:
            raise MJPEGError(
                f"declared Content-Length {length} is larger than max_frame_size "
                f"({self.max_frame_size})"
            )
        return length

    @staticmethod
    def _looks_like_header_line(w: bytes, i: int) -> bool:
        newline = w.find(b"\n", i, i + 256)
        colon = w.find(b":", i, newline if newline >= 0 else i + 256)
        return colon > i and w[i : i + 1].isalpha()

    def _begin_body(self, headers: _PartHeaders) -> None:
        self._headers = headers
        self._reset_body()
        if headers.length is None:
            self._state = _State.BODY_SCAN
        elif headers.length == 0:
            self._state = _State.AFTER_BODY
        else:
            self._remaining = headers.length
            self._state = _State.BODY_LENGTH

    # ------------------------------------------------------------------ bodies

    def _feed_length(
        self, chunk: bytes, view: memoryview, pos: int, end: int, frames: list[Frame]
    ) -> int:
        take = min(self._remaining, end - pos)
        # A chunk that is all body is kept as is: a lone part becomes Frame.data uncopied.
        self._parts.append(
            chunk if take == end == len(chunk) and not pos else view[pos : pos + take]
        )
        self._body_size += take
        self._remaining -= take
        if self._remaining == 0:
            self._emit(frames)
            self._state = _State.AFTER_BODY
        return pos + take

    def _feed_scan(
        self, chunk: bytes, view: memoryview, pos: int, end: int, frames: list[Frame]
    ) -> int:
        """Append body bytes up to a boundary line, which may straddle two chunks."""
        if self._core is None:
            return self._feed_until_eoi(chunk, view, pos, end, frames)
        # A boundary line can straddle chunks only if a line feed is in the body's tail.
        if self._parts and b"\n" in self._tail:
            tail = self._body_tail(self._overlap())
            seam = tail + chunk[pos : pos + self._overlap()]
            found = self._find_boundary(seam, 0, len(seam), line_start_at_start=False)
            if found is not None and found < len(tail):
                self._drop_body_tail(len(tail) - found)
                self._finish_scanned(frames)
                self._small += tail[found:]
                self._state = _State.DELIMITER
                return pos
        # The chunk's first byte starts a line when the body is empty (a boundary glued to
        # the headers) or the body so far ends with a line feed.
        at_line_start = not self._parts or self._tail.endswith(b"\n")
        found = self._find_boundary(chunk, pos, end, line_start_at_start=at_line_start)
        if found is None:
            self._append_body(view, pos, end)
            return end
        self._append_body(view, pos, found)
        self._finish_scanned(frames)
        self._state = _State.DELIMITER
        return found

    def _feed_until_eoi(
        self, chunk: bytes, view: memoryview, pos: int, end: int, frames: list[Frame]
    ) -> int:
        """No boundary known: a body ends at the JPEG end-of-image marker."""
        if self._parts and self._body_tail(1) == EOI[:1] and chunk.startswith(EOI[1:], pos):
            stop = pos + 1
        else:
            found = chunk.find(EOI, pos, end)
            if found < 0:
                self._append_body(view, pos, end)
                return end
            stop = found + len(EOI)
        self._append_body(view, pos, stop)
        self._emit(frames)
        self._state = _State.AFTER_BODY
        return stop

    def _find_boundary(
        self, data: bytes, start: int, end: int, *, line_start_at_start: bool
    ) -> int | None:
        r"""Where a boundary line starts in ``data[start:end]``, or None.

        A boundary line is up to four dashes, the boundary, then a line end, ``--``,
        whitespace or the end of the data. It must start a line: after ``\\n``, or at
        ``start`` when that is known to be a line start (a body's first byte, for a
        ``Content-Length`` glued to the next boundary).
        """
        core = self._core
        if core is None:
            return None
        if self._dashes is not None:
            return self._find_known_boundary(
                data, start, end, line_start_at_start=line_start_at_start
            )
        index = data.find(core, start, end)
        while index >= 0:
            line = index
            while line > start and data[line - 1] == _DASH and index - line < _MAX_DASHES:
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
        self, data: bytes, start: int, end: int, *, line_start_at_start: bool
    ) -> int | None:
        """:meth:`_find_boundary` once the server's dashes are known: one long needle."""
        assert self._core is not None  # noqa: S101
        assert self._dashes is not None  # noqa: S101
        line = self._dashes + self._core
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

    def _append_body(self, view: memoryview, start: int, stop: int) -> None:
        if stop > start:
            self._parts.append(view[start:stop])
            self._body_size += stop - start
            keep = self._overlap()
            if stop - start >= keep:
                self._tail = bytes(view[stop - keep : stop])
            else:
                self._tail = (self._tail + bytes(view[start:stop]))[-keep:]
        if self._body_size > self.max_frame_size:
            size = self._body_size
            self._reset_body()
            raise MJPEGError(
                f"frame larger than max_frame_size ({size} > {self.max_frame_size} bytes) "
                "and no boundary in sight"
            )

    def _finish_scanned(self, frames: list[Frame]) -> None:
        self._trim_trailing_newlines()
        if self._body_size:
            self._emit(frames)
        else:
            self._reset_body()

    def _body_tail(self, size: int) -> bytes:
        """The last ``size`` bytes of the body so far (a small copy)."""
        pieces: list[bytes] = []
        need = size
        for part in reversed(self._parts):
            if need <= 0:
                break
            piece = bytes(part[-need:])
            pieces.append(piece)
            need -= len(piece)
        return b"".join(reversed(pieces))

    def _drop_body_tail(self, size: int) -> None:
        while size > 0 and self._parts:
            last = self._parts[-1]
            if len(last) <= size:
                self._parts.pop()
                size -= len(last)
                self._body_size -= len(last)
            else:
                self._parts[-1] = last[: len(last) - size]
                self._body_size -= size
                size = 0

    def _trim_trailing_newlines(self) -> None:
        while self._parts:
            last = self._parts[-1]
            keep = len(last)
            while keep and last[keep - 1] in _NEWLINES:
                keep -= 1
            self._body_size -= len(last) - keep
            if keep:
                self._parts[-1] = last[:keep]
                return
            self._parts.pop()

    def _is_whole_jpeg(self) -> bool:
        if self._body_size < len(SOI) + len(EOI):
            return False
        first = self._parts[0]
        head = bytes(first[:2]) if len(first) >= 2 else self._body_head(2)
        return head == SOI and self._body_tail(2) == EOI

    def _body_head(self, size: int) -> bytes:
        out = b""
        for part in self._parts:
            out += bytes(part[: size - len(out)])
            if len(out) >= size:
                break
        return out

    def _emit(self, frames: list[Frame]) -> None:
        now = self._clock()
        index = self._next_index
        self._next_index += 1
        if now < self.skip_until:
            self.skipped += 1  # dropped without copying a byte
        else:
            if self.min_interval:
                # A schedule, not "last delivered + interval": jitter must not drop frames.
                self.skip_until = max(self.skip_until + self.min_interval, now)
            parts = self._parts
            data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
            headers = self._headers
            frames.append(
                Frame(
                    data=data,
                    index=index,
                    received_at=now,
                    content_type=headers.content_type,
                    timestamp=headers.timestamp,
                    transform=self.transform,
                )
            )
        self._reset_body()

    def _reset_body(self) -> None:
        self._parts = []
        self._body_size = 0
        self._remaining = 0
        self._tail = b""  # the body's last few bytes, kept while scanning
