"""The MJPEG parser's state machine: where in the stream it is, and what each state reads.

Between parts the common case (boundary line + ``Content-Type``/``Content-Length`` headers) is
one C-speed match in place; everything else runs the control states over a small bounded
window. Bodies are taken by length, or scanned for the next boundary line (``_boundary``),
into a :class:`~oe_async.mjpeg._body.FrameBody`.
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections.abc import Callable
from typing import Final

from ._body import FrameBody
from ._boundary import (
    MAX_DASHES,
    boundary_at,
    boundary_from_content_type,
    checked_boundary,
    fast_pattern,
    find_boundary,
    find_straddling,
    learn_boundary,
    read_boundary_line,
)
from ._frame import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADER_SIZE, SOI, Frame, MJPEGError
from ._headers import PartHeaders, looks_like_header_line, parse_headers, read_part_headers

_WHITESPACE: Final = b" \t\r\n"
_LF: Final = ord("\n")
#: The first window tried in the control states: part headers are ~100 bytes.
_FIRST_WINDOW: Final = 512


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


class MJPEGParser:
    """Incremental MJPEG parser: feed it bytes as they arrive, it returns complete frames.

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
        boundary = checked_boundary(boundary)
        if max_frame_size < 1 or max_header_size < 1:
            raise MJPEGError("max_frame_size and max_header_size must be positive")
        if not min_interval >= 0:
            raise MJPEGError("min_interval must not be negative")
        self._core: bytes | None = boundary
        self._fast: re.Pattern[bytes] | None = fast_pattern(boundary)
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
        self._body = FrameBody()
        self._remaining = 0  # BODY_LENGTH: bytes still to come
        self._junk = 0  # bytes skipped since the last recognised structure
        self._headers = PartHeaders()
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
        return self._body.size + len(self._small)

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
        body = self._body
        if self._state is _State.BODY_SCAN and body.size:
            body.trim_trailing_newlines()
            if body.is_whole_jpeg():
                self._emit(frames)
            else:
                self.truncated += 1
        elif self._state is _State.BODY_LENGTH and body.size:
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
        self._begin_body(parse_headers(match.group(2), self.max_frame_size))
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
        return len(self._core or b"") + MAX_DASHES + 1

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
                    self._begin_body(PartHeaders())
                    return i, False
                if boundary_at(w, i, self._core):
                    self._state = _State.DELIMITER
                    continue
                if w.find(b"\n", i) < 0 and n - i < _FIRST_WINDOW:
                    return i, True  # decide on a whole first line
                if state is _State.START and looks_like_header_line(w, i):
                    self._state = _State.HEADERS
                else:
                    self._state = _State.PREAMBLE
            elif state is _State.PREAMBLE:
                found = find_boundary(w, i, n, self._core, self._dashes, line_start_at_start=True)
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

    def _delimiter(self, w: bytes, i: int) -> int | None:
        """Consume a boundary line at ``i``; return where the part headers start."""
        if self._core is None:
            newline = w.find(b"\n", i)
            if newline < 0:
                return None
            self._core = learn_boundary(w[i:newline])
            if self._core is None:
                self._state = _State.PREAMBLE
                return i + 1
            self._fast = fast_pattern(self._core)
        line = read_boundary_line(w, i, self._core)
        if line is None:
            return None
        dashes_end, after = line
        if after < 0:
            self._state = _State.PREAMBLE  # not a boundary after all: skip a byte
            self._junk += 1
            return i + 1
        if self._dashes is None:
            self._dashes = w[i:dashes_end]
        if w.startswith(b"--", after):
            self._state = _State.END  # the closing boundary
            return after + 2
        self._junk = 0
        self._state = _State.HEADERS
        return after

    def _part_headers(self, w: bytes, i: int) -> int | None:
        """Parse part headers at ``i``; return where the body starts."""
        found = read_part_headers(
            w, i, max_header_size=self.max_header_size, max_frame_size=self.max_frame_size
        )
        if found is None:
            return None
        self._begin_body(found[0])
        return found[1]

    def _begin_body(self, headers: PartHeaders) -> None:
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
        body = self._body
        # A chunk that is all body is kept as is: a lone part becomes Frame.data uncopied.
        body.parts.append(
            chunk if take == end == len(chunk) and not pos else view[pos : pos + take]
        )
        body.size += take
        self._remaining -= take
        if self._remaining == 0:
            self._emit(frames)
            self._state = _State.AFTER_BODY
        return pos + take

    def _feed_scan(
        self, chunk: bytes, view: memoryview, pos: int, end: int, frames: list[Frame]
    ) -> int:
        """Append body bytes up to a boundary line, which may straddle two chunks."""
        core = self._core
        if core is None:
            return self._feed_until_eoi(chunk, view, pos, end, frames)
        # A boundary line can straddle chunks only if a line feed is in the body's tail.
        body = self._body
        if body.parts and b"\n" in body.tail:
            tail = body.last(self._overlap())
            found = find_straddling(tail, chunk[pos : pos + self._overlap()], core, self._dashes)
            if found is not None:
                body.drop_last(len(tail) - found)
                self._finish_scanned(frames)
                self._small += tail[found:]
                self._state = _State.DELIMITER
                return pos
        # The chunk's first byte starts a line when the body is empty (a boundary glued to
        # the headers) or the body so far ends with a line feed.
        at_line_start = not body.parts or body.tail.endswith(b"\n")
        found = find_boundary(
            chunk, pos, end, core, self._dashes, line_start_at_start=at_line_start
        )
        if found is None:
            self._body.append(view, pos, end, self._overlap(), self.max_frame_size)
            return end
        self._body.append(view, pos, found, self._overlap(), self.max_frame_size)
        self._finish_scanned(frames)
        self._state = _State.DELIMITER
        return found

    def _feed_until_eoi(
        self, chunk: bytes, view: memoryview, pos: int, end: int, frames: list[Frame]
    ) -> int:
        """No boundary known: a body ends at the JPEG end-of-image marker."""
        stop = self._body.end_of_image(chunk, pos, end)
        if stop < 0:
            self._body.append(view, pos, end, self._overlap(), self.max_frame_size)
            return end
        self._body.append(view, pos, stop, self._overlap(), self.max_frame_size)
        self._emit(frames)
        self._state = _State.AFTER_BODY
        return stop

    def _finish_scanned(self, frames: list[Frame]) -> None:
        self._body.trim_trailing_newlines()
        if self._body.size:
            self._emit(frames)
        else:
            self._reset_body()

    def _emit(self, frames: list[Frame]) -> None:
        now = self._clock()
        index = self._next_index
        self._next_index += 1
        self._remaining = 0
        if now < self.skip_until:
            self.skipped += 1  # dropped without copying a byte
            self._body.reset()
        else:
            if self.min_interval:
                # A schedule, not "last delivered + interval": jitter must not drop frames.
                self.skip_until = max(self.skip_until + self.min_interval, now)
            frames.append(self._body.take_frame(index, now, self._headers, self.transform))

    def _reset_body(self) -> None:
        self._body.reset()
        self._remaining = 0
