"""A stream of frames: one MJPEG response through the request funnel, renewed on demand.

:class:`FrameStream` reads an MJPEG response in pieces sized for the parser
(:mod:`oe_async.mjpeg`), and with a reconnect policy renews it when the relay ends it,
backing off on 609 and on temporary failures, keeping frame indices continuous.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Literal, Self

import aiohttp

from oe_async._funnel import Call, Funnel
from oe_async._http import TRANSPORT_ERRORS, display_path, read_limited
from oe_async._plugin_wire import (
    MAX_ENVELOPE_SIZE,
    PLUGIN_PREFIX,
    content_error,
    is_json_type,
    plugin_error_from_http,
)
from oe_async._redact import KnownSecrets
from oe_async.errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterHTTPError,
    RelayError,
    WebcamLimitError,
)
from oe_async.mjpeg import Frame, MJPEGError, MJPEGParser
from oe_async.retry import ReconnectPolicy, is_temporary

_LOGGER = logging.getLogger("oe_async")

#: OctoPrint's own MJPEG paths (mjpg-streamer behind OctoPi): pass them as ``path=``. The
#: default (no ``path``, no ``index``) is the plugin's default camera, on every platform.
DEFAULT_STREAM_PATH: Final = "/webcam/?action=stream"
DEFAULT_SNAPSHOT_PATH: Final = "/webcam/?action=snapshot"
PLUGIN_STREAM: Final = PLUGIN_PREFIX + "webcam/stream"
PLUGIN_SNAPSHOT: Final = PLUGIN_PREFIX + "webcam/snapshot"
TRANSFORM_HEADER: Final = "x-oe-webcam-transform"
#: After a read smaller than this, the next ones take everything aiohttp has buffered, so
#: that tiny HTTP chunks cost one read per socket read, not one per chunk (a read costs
#: ~1 us: ~2 ns per byte from here up). Larger pieces are read one at a time, as aiohttp
#: holds them, never joined: a join of everything buffered (~256 KB) is large enough for
#: the C allocator to take from and give back to the kernel, a page fault per 4 KB.
COALESCE_BELOW: Final = 512
#: How many reads take everything buffered after a small one: a flood of tiny chunks pays
#: for one chunk-sized read in this many, not in every other one.
COALESCE_READS: Final = 8


async def json_answer_error(
    resp: aiohttp.ClientResponse, secrets: KnownSecrets
) -> OctoEverywhereError:
    """A webcam answered JSON (the plugin's ``{"Status": 754}`` for a missing camera).

    ``secrets`` (the connection's own) are hidden from the error's message.
    """
    what = f"the webcam {display_path(resp.url)}"
    body = await read_limited(resp, MAX_ENVELOPE_SIZE, what=what)
    return content_error(body, what=what, secrets=secrets)


#: Where a :class:`FrameStream` is: ``"connecting"`` (opening a stream), ``"streaming"``
#: (a stream is open), ``"waiting"`` (backing off before the next open, after a failure
#: or a 609), ``"closed"`` (ended; iteration is over).
StreamState = Literal["connecting", "streaming", "waiting", "closed"]


class FrameStream:
    """Frames from an MJPEG stream; use as ``async with printer.webcam.frames() as frames``.

    Usable as a plain async iterator too; the connection is released when the iteration
    ends, raises, is cancelled, or the ``async with`` block exits. A shared stream's
    consumer (``frames(shared=True)``) leaves the stream instead; the last one to leave
    closes it.

    Tiny HTTP chunks are read together, everything aiohttp has buffered at once: a camera
    that sends small chunks streams, and a flood of them costs the client what aiohttp's own
    parsing of them costs (~1 us per chunk), not more. Large pieces are read one by one, as
    aiohttp holds them, without copying them together.

    Attributes:
        reconnects: how many times the stream was reopened.

    """

    def __init__(
        self,
        funnel: Funnel,
        call: Call,
        *,
        max_fps: float | None,
        reconnect: ReconnectPolicy | None,
        max_frame_size: int,
    ) -> None:
        check_max_fps(max_fps)
        self._funnel = funnel
        self._call = call
        self._interval = 1.0 / max_fps if max_fps else 0.0
        self._policy = reconnect
        self._max_frame_size = max_frame_size
        self._resp: aiohttp.ClientResponse | None = None
        self._parser: MJPEGParser | None = None
        #: A shared stream's reader: the time before which no consumer takes a frame.
        self._gate: Callable[[], float] | None = None
        #: Reads left that take everything buffered (see COALESCE_BELOW).
        self._coalesce = 0
        #: Frames parsed and not yet handed out, last first: a frame handed out is no longer
        #: held here (holding it until the next read kept two ~100 KB frames alive at once,
        #: and the allocator paid for that in page faults).
        self._frames: list[Frame] = []
        self._next_index = 0
        self._skip_until = float("-inf")
        self._skipped = 0
        self._failures = 0
        self._frames_this_stream = 0
        self._opened = False
        self._finished = False
        self._state: StreamState = "connecting"
        self._resume_at: float | None = None
        self._last_error: OctoEverywhereError | None = None
        #: How many times the stream was reopened.
        self.reconnects: int = 0

    async def __aenter__(self) -> Self:
        return self

    def __del__(self) -> None:
        # A plain `async for ...: break` never calls aclose(): do not keep the connection.
        resp = getattr(self, "_resp", None)
        if resp is not None:
            resp.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    @property
    def transform(self) -> str | None:
        """The relay's ``x-oe-webcam-transform`` for the current stream, if any."""
        return self._parser.transform if self._parser is not None else None

    @property
    def skipped(self) -> int:
        """Frames dropped by ``max_fps`` so far (never copied); counts while streaming."""
        return self._skipped + (self._parser.skipped if self._parser is not None else 0)

    @property
    def dropped(self) -> int:
        """Frames this consumer was too slow to take: always 0 for a stream of its own.

        A stream of its own reads no faster than its consumer; a shared stream's consumer
        keeps only its latest ``buffer`` frames (see :meth:`Webcam.frames`).
        """
        return 0

    @property
    def consumers(self) -> int:
        """How many consumers read this stream's connection: 1 for a stream of its own."""
        return 1

    @property
    def state(self) -> StreamState:
        """``"connecting"``, ``"streaming"``, ``"waiting"`` (a back-off) or ``"closed"``.

        While ``"waiting"``, :attr:`last_error` says why (a
        :class:`oe_async.WebcamLimitError` for a 609) and :attr:`resume_at` when the next
        open is due. Read it from another task (an entity's availability, a status line):
        the consumer of the frames is inside its ``async for`` during the wait.
        """
        return self._state

    @property
    def waiting_for_webcam_limit(self) -> bool:
        """True while the stream waits out a 609 (the webcam was opened too often)."""
        return self._state == "waiting" and isinstance(self._last_error, WebcamLimitError)

    @property
    def resume_at(self) -> float | None:
        """``time.monotonic()`` when the next open is due, while ``"waiting"``; else None."""
        return self._resume_at if self._state == "waiting" else None

    @property
    def last_error(self) -> OctoEverywhereError | None:
        """The failure behind the latest back-off (None once frames flow again)."""
        return self._last_error

    async def aclose(self) -> None:
        """Stop the stream and release its connection (idempotent)."""
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._state = "closed"
        self._resume_at = None
        self._frames = []
        self._drop_response()

    def _drop_response(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()  # unread stream: close, do not try to reuse the connection
        parser, self._parser = self._parser, None
        if parser is not None:
            self._skipped += parser.skipped
            self._next_index = parser.next_index
            self._skip_until = parser.skip_until

    async def __anext__(self) -> Frame:
        if self._frames:  # parsed by an earlier read
            return self._frames.pop()
        try:
            return await self._next_frame()
        except BaseException:
            # Errors and cancellation end the stream here, so a plain `async for` that
            # stops early never leaves a connection behind.
            self._finish()
            raise

    async def _next_frame(self) -> Frame:
        while True:
            if self._frames:
                return self._frames.pop()
            if self._finished:
                raise StopAsyncIteration
            resp = self._resp
            if resp is None:
                await self._open()
                continue
            parser = self._parser
            assert parser is not None  # noqa: S101 (set with the response)
            content = resp.content
            try:
                if self._coalesce:
                    # Small pieces: everything aiohttp holds in one read, however many HTTP
                    # chunks it came in (an await per chunk cost ~2.6-3.8 us per byte).
                    chunk = await content.readany()
                    self._coalesce -= 1
                else:
                    # Large pieces one at a time, as aiohttp holds them: joining them into
                    # one read copied every byte once more, in blocks big enough that the
                    # allocator handed them back to the kernel (page faults each time).
                    chunk, end_of_chunk = await content.readchunk()
                    if not chunk and end_of_chunk and not content.at_eof():
                        continue  # an HTTP chunk's end (see _http.read_chunk for the EOF case)
            except TRANSPORT_ERRORS as err:
                error = self._funnel.error_for(err, self._call.method, resp.url.path)
                await self._stream_ended(error)
                continue
            if len(chunk) < COALESCE_BELOW:
                self._coalesce = COALESCE_READS
            if self._gate is not None:
                parser.skip_until = self._gate()
            frames = parser.feed(chunk) if chunk else parser.close()
            if frames:
                self._last_error = None
                self._frames_this_stream += len(frames)
                frames.reverse()
                self._frames = frames
            if not chunk:  # the body is over; frames completed by it are returned first
                await self._stream_ended(None)

    async def _stream_ended(self, error: OctoEverywhereError | None) -> None:
        """The server ended (or dropped) the stream: renew it or finish."""
        had_frames = self._frames_this_stream > 0
        self._drop_response()
        if self._funnel.transport.closed:  # close() ended it: never renew, always say why
            self._finished = True
            raise ClientClosedError("the webcam stream ended: the OctoEverywhere client was closed")
        if self._policy is None:
            self._finished = True
            if error is not None:
                raise error
            return
        if had_frames:
            self._failures = 0
            self._last_error = None
            _LOGGER.debug("webcam stream ended after %d frames; renewing", self._frames_this_stream)
            return
        await self._failed(error or CommunicationError("the webcam stream ended before a frame"))

    async def _failed(self, error: OctoEverywhereError) -> None:
        assert self._policy is not None  # noqa: S101
        self._failures += 1
        limit = self._policy.max_failures
        if not is_temporary(error) or (limit is not None and self._failures >= limit):
            raise error
        delay = self._policy.delay(self._failures, error)
        _LOGGER.debug(
            "webcam stream failed (%s); reopening in %.2f s (%d of %s)",
            type(error).__name__,
            delay,
            self._failures,
            self._policy.max_failures,
        )
        self._last_error = error
        self._resume_at = time.monotonic() + delay
        self._state = "waiting"
        try:
            await asyncio.sleep(delay)
        finally:
            self._resume_at = None
        self._state = "connecting"

    async def _open(self) -> None:
        self._state = "connecting"
        try:
            resp = await self._funnel.open(self._call)
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if self._policy is None or mapped is not None:
                raise (mapped or err) from None
            await self._failed(err)
            return
        except (CommunicationError, RelayError) as err:
            if self._policy is None:
                raise
            await self._failed(err)
            return
        if is_json_type(resp.content_type):  # a plugin envelope, never a stream
            try:
                error = await json_answer_error(resp, self._funnel.secrets)
            except TRANSPORT_ERRORS as err:
                error = self._funnel.error_for(err, self._call.method, resp.url.path)
            finally:
                resp.close()
            if self._policy is None:
                raise error
            await self._failed(error)
            return
        self._frames_this_stream = 0
        if self._opened:
            self.reconnects += 1
        self._opened = True
        self._resp = resp
        try:
            self._parser = MJPEGParser.from_content_type(
                resp.headers.get("Content-Type"),
                max_frame_size=self._max_frame_size,
                transform=resp.headers.get(TRANSFORM_HEADER),
                first_index=self._next_index,
                min_interval=self._interval,
            )
        except MJPEGError:
            self._drop_response()
            raise
        self._parser.skip_until = self._skip_until
        self._state = "streaming"


def check_max_fps(max_fps: float | None) -> None:
    if max_fps is not None and (
        isinstance(max_fps, bool) or not isinstance(max_fps, int | float) or not max_fps > 0
    ):
        raise InvalidArgumentError("max_fps must be a positive number")
