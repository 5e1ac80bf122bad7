"""Webcam streams and snapshots: the thin aiohttp adapter around :mod:`oe_async.mjpeg`.

``printer.webcam.frames()`` opens an MJPEG stream through the request funnel and yields
:class:`oe_async.mjpeg.Frame` objects; with ``reconnect`` it renews the stream when the relay
ends it (each stream lasts at most the account's ``max_webcam_stream_seconds``), backs off on
609 and on temporary failures, and keeps frame indices continuous.

``frames(shared=True)`` gives many consumers of one camera one upstream stream: a
``_SharedStream`` reads it in a task of its own (a ``FrameStream`` that reopens only while
someone watches) and hands each frame to every consumer's small buffer
(:mod:`oe_async._fanout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Self

import aiohttp

from ._fanout import FrameFanout, FrameSeat
from ._funnel import Call, Funnel
from ._http import TRANSPORT_ERRORS, ChunkFloodGuard, display_path, read_chunk, read_limited
from ._plugin_wire import (
    MAX_ENVELOPE_SIZE,
    PLUGIN_PREFIX,
    content_error,
    is_json_type,
    plugin_error_from_http,
)
from ._redact import KnownSecrets
from .errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterHTTPError,
    RelayError,
    RequestTimeoutError,
    WebcamLimitError,
)
from .mjpeg import DEFAULT_MAX_FRAME_SIZE, Frame, MJPEGError, MJPEGParser
from .retry import ReconnectPolicy, RetryPolicy, is_temporary

__all__ = ["FrameStream", "StreamState", "Webcam"]

_LOGGER = logging.getLogger(__package__)

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


async def _json_answer_error(
    resp: aiohttp.ClientResponse, secrets: KnownSecrets
) -> OctoEverywhereError:
    """A webcam answered JSON (the plugin's ``{"Status": 754}`` for a missing camera)."""
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
        _check_max_fps(max_fps)
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
        if self._funnel.client_closed:  # close() ended it: never renew, always say why
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
                error = await _json_answer_error(resp, self._funnel.secrets)
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


def _check_max_fps(max_fps: float | None) -> None:
    if max_fps is not None and (
        isinstance(max_fps, bool) or not isinstance(max_fps, int | float) or not max_fps > 0
    ):
        raise InvalidArgumentError("max_fps must be a positive number")


#: How long a shared stream stays open after its last consumer left (``linger``), seconds.
DEFAULT_LINGER: Final = 2.0
#: Frames a shared stream's consumer may fall behind before the oldest is dropped.
DEFAULT_BUFFER: Final = 2

#: A back-off that outlived its stream: (``time.monotonic()`` to wait until, why).
_Hold = tuple[float, OctoEverywhereError]


class _UpstreamReader(FrameStream):
    """The stream a :class:`_SharedStream` reads: it reopens only while someone watches."""

    def __init__(
        self,
        funnel: Funnel,
        call: Call,
        *,
        reconnect: ReconnectPolicy | None,
        max_frame_size: int,
        wanted: Callable[[], bool],
        gate: Callable[[], float],
    ) -> None:
        super().__init__(
            funnel, call, max_fps=None, reconnect=reconnect, max_frame_size=max_frame_size
        )
        self._wanted = wanted
        self._gate = gate

    async def _open(self) -> None:
        if not self._wanted():  # everyone left while it lingered: no open for nobody
            self._finish()
            return
        await super()._open()

    def close_now(self) -> None:
        """End the stream and release its connection, synchronously."""
        self._finish()


class _SharedStream:
    """One upstream stream of a camera, read by one task, and the consumers sharing it.

    The first consumer's :meth:`join` starts the reading task; :meth:`leave` by the last
    one stops it (after ``linger`` seconds if the stream is open). Frames go to every
    consumer through a :class:`oe_async._fanout.FrameFanout`; renewals and back-offs are
    the reader's own (a :class:`FrameStream` with the consumers' reconnect policy), and its
    end or error reaches every consumer once.
    """

    def __init__(
        self,
        funnel: Funnel,
        call: Call,
        *,
        reconnect: ReconnectPolicy | None,
        max_frame_size: int,
        hold: _Hold | None,
        done: Callable[[_SharedStream, _Hold | None], None],
    ) -> None:
        self._funnel = funnel
        self.fanout = FrameFanout()
        self.reader = _UpstreamReader(
            funnel,
            call,
            reconnect=reconnect,
            max_frame_size=max_frame_size,
            wanted=self._wanted,
            gate=self.fanout.threshold,
        )
        self._hold = hold
        self._done = done
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        #: True once the stream was ended (or is ending): it takes no new consumer.
        self.stopped = False

    def _wanted(self) -> bool:
        return bool(self.fanout.seats)

    @property
    def state(self) -> StreamState:
        """The reader's state; ``"waiting"`` too while a remembered back-off runs out."""
        return "waiting" if self._hold is not None else self.reader.state

    @property
    def resume_at(self) -> float | None:
        """When the next open is due, while waiting."""
        return self._hold[0] if self._hold is not None else self.reader.resume_at

    @property
    def last_error(self) -> OctoEverywhereError | None:
        """Why it waits (see :attr:`FrameStream.last_error`)."""
        return self._hold[1] if self._hold is not None else self.reader.last_error

    def join(self, seat: FrameSeat) -> None:
        """Add a consumer; the first one starts the reading task.

        Raises:
            ClientClosedError: the client is closed.

        """
        self._cancel_linger()
        self.fanout.join(seat)
        if self._task is None:
            try:
                self._task = self._funnel.spawn(self._run(), name="oe_async shared webcam stream")
            except BaseException:
                self.fanout.leave(seat)
                self.stop()
                raise

    def leave(self, seat: FrameSeat, linger: float) -> bool:
        """A consumer left; True when it was the last and the stream was stopped at once.

        With ``linger`` the open stream stays ``linger`` seconds for a consumer to come
        back (a page reload). A stream waiting out a back-off stops at once: nobody is
        there to see its next open, and the wait is remembered for the next consumer.
        """
        if not self.fanout.leave(seat) or self.fanout.seats or self.stopped:
            return False
        if linger > 0 and self._hold is None and self.reader.state != "waiting":
            self._linger = asyncio.get_running_loop().call_later(linger, self.stop)
            return False
        self.stop()
        return True

    def stop(self) -> None:
        """End the stream now and release its connection (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        self._cancel_linger()
        hold = self._hold
        resume_at, error = self.reader.resume_at, self.reader.last_error
        if hold is None and resume_at is not None and error is not None:
            hold = (resume_at, error)
        self._done(self, hold)
        self.reader.close_now()
        if self._task is not None:
            self._task.cancel()

    def _cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    async def wait_stopped(self) -> None:
        """Wait until the reading task has ended (after :meth:`stop`)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            if self._hold is not None:
                await asyncio.sleep(self._hold[0] - time.monotonic())
                self._hold = None
            async for frame in self.reader:
                self.fanout.publish(frame)
        except asyncio.CancelledError:
            error = (
                ClientClosedError("the webcam stream ended: the OctoEverywhere client was closed")
                if self._funnel.client_closed
                else CommunicationError("the shared webcam stream was cancelled")
            )
            raise
        except Exception as err:  # noqa: BLE001 (every consumer gets it, nothing is lost)
            error = err
        finally:
            self.reader.close_now()
            if not self.stopped:
                self.stopped = True
                self._cancel_linger()
                self._done(self, None)
            self.fanout.end(error)


class _SharedFrames(FrameStream):
    """One consumer's share of a :class:`_SharedStream`: ``frames(shared=True)``.

    It takes its place on its first ``__anext__`` (creating the shared stream if it is the
    first) and leaves it when closed, cancelled, or garbage-collected.
    """

    def __init__(
        self,
        join: Callable[[], _SharedStream],
        *,
        max_fps: float | None,
        buffer: int,
        linger: float,
    ) -> None:
        # No FrameStream.__init__: a share holds no connection of its own.
        _check_max_fps(max_fps)
        self._join = join
        self._max_fps = max_fps
        self._buffer = buffer
        self._linger_seconds = linger
        self._shared: _SharedStream | None = None
        self._seat: FrameSeat | None = None
        self._left = False
        self._skipped_before = 0
        self._reconnects_before = 0

    def __del__(self) -> None:
        # A plain `async for ...: break` never calls aclose(): do not keep the stream.
        shared, seat = getattr(self, "_shared", None), getattr(self, "_seat", None)
        if shared is not None and seat is not None:
            with contextlib.suppress(RuntimeError):  # no running loop any more
                shared.leave(seat, self._linger_seconds)

    async def __anext__(self) -> Frame:
        seat = self._seat
        if seat is None:
            seat = self._take_seat()
        frame = seat.take()
        if frame is not None:
            return frame
        try:
            return await seat.wait()
        except asyncio.CancelledError:
            # Cancelled while waiting for a frame, a share is over (as a stream of its own
            # is) and leaves at once.
            self._leave(seat)
            raise

    def _take_seat(self) -> FrameSeat:
        if self._left:
            seat = self._seat = FrameSeat(buffer=1, max_fps=None)
            seat.close()
            return seat
        shared = self._join()
        seat = FrameSeat(buffer=self._buffer, max_fps=self._max_fps)
        self._seat = seat
        self._skipped_before = shared.reader.skipped
        self._reconnects_before = shared.reader.reconnects
        try:
            shared.join(seat)
        except BaseException:
            self._left = True
            seat.close()
            raise
        self._shared = shared
        return seat

    def _leave(self, seat: FrameSeat) -> bool:
        self._left = True
        seat.close()
        return self._shared is not None and self._shared.leave(seat, self._linger_seconds)

    async def aclose(self) -> None:
        """Leave the shared stream (idempotent); the last consumer leaving ends it.

        With ``linger`` the stream stays open that long for a consumer to come back.
        """
        self._left = True
        seat = self._seat
        if seat is not None and self._leave(seat) and self._shared is not None:
            await self._shared.wait_stopped()

    @property
    def reconnects(self) -> int:
        """How many times the shared stream was reopened since this consumer joined."""
        shared = self._shared
        return shared.reader.reconnects - self._reconnects_before if shared is not None else 0

    @reconnects.setter
    def reconnects(self, value: int) -> None:
        self._reconnects_before -= value - self.reconnects

    @property
    def transform(self) -> str | None:
        """The relay's ``x-oe-webcam-transform`` for the current stream, if any."""
        return self._shared.reader.transform if self._shared is not None else None

    @property
    def skipped(self) -> int:
        """Frames held back by this consumer's ``max_fps`` so far."""
        seat, shared = self._seat, self._shared
        if seat is None or shared is None:
            return 0
        # Frames the reader did not even copy were held back by every consumer's max_fps.
        return seat.skipped + shared.reader.skipped - self._skipped_before

    @property
    def dropped(self) -> int:
        """Frames this consumer was too slow to take (``buffer`` newer ones were waiting)."""
        return self._seat.dropped if self._seat is not None else 0

    @property
    def consumers(self) -> int:
        """How many consumers share the upstream stream now, this one included."""
        if self._shared is None or self.state == "closed":
            return 0
        return len(self._shared.fanout.seats)

    @property
    def state(self) -> StreamState:
        """The shared stream's state, ``"closed"`` once this consumer's iteration is over."""
        seat = self._seat
        if self._left or (seat is not None and seat.ended):
            return "closed"
        return self._shared.state if self._shared is not None else "connecting"

    @property
    def waiting_for_webcam_limit(self) -> bool:
        """True while the shared stream waits out a 609."""
        return self.state == "waiting" and isinstance(self.last_error, WebcamLimitError)

    @property
    def resume_at(self) -> float | None:
        """When the shared stream's next open is due, while ``"waiting"``; else None."""
        shared = self._shared
        return shared.resume_at if shared is not None and self.state == "waiting" else None

    @property
    def last_error(self) -> OctoEverywhereError | None:
        """The failure behind the shared stream's latest back-off."""
        return self._shared.last_error if self._shared is not None else None


def _frozen(params: Any) -> Hashable:
    """A hashable form of a call's query parameters (part of a shared stream's key)."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in params.items()))
    return repr(params)


class Webcam:
    """Webcam streams and snapshots: ``printer.webcam``.

    Without ``path`` or ``index``, the printer's default camera through OctoEverywhere's
    printer-agnostic plugin API (``webcam/stream``, ``webcam/snapshot``), on every platform
    it supports; ``index`` picks another camera of ``printer.plugin.webcams()``; ``path``
    is one of the printer's own MJPEG URLs (OctoPrint's ``/webcam/?action=stream``).
    A plugin answer that is not an image (``{"Status": 754}`` for a camera the printer
    does not have) raises its :class:`oe_async.PluginCommandError`.
    """

    __slots__ = ("_funnel", "_holds", "_shared")

    def __init__(self, funnel: Funnel) -> None:
        self._funnel = funnel
        #: The shared streams running now, by what identifies their upstream.
        self._shared: dict[Hashable, _SharedStream] = {}
        #: Back-offs (609...) that outlived their shared stream: the next one waits them out.
        self._holds: dict[Hashable, _Hold] = {}

    def __repr__(self) -> str:
        return f"<Webcam of {self._funnel!r}>"

    def _call(
        self,
        path: str | None,
        *,
        index: int | None,
        read_timeout: float,
        snapshot: bool,
        retry: RetryPolicy | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Call:
        """The funnel call for a stream or snapshot (the plugin API unless ``path`` is set).

        Each attempt has no total limit (a stream runs for minutes; a snapshot's deadline
        is kept by :meth:`snapshot` across attempts), a connect bound, and ``read_timeout``
        per read unless ``timeout`` sets ``sock_read``.
        """
        params: dict[str, Any] | None = None
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise InvalidArgumentError("index must be a non-negative integer")
            if path is not None:
                raise InvalidArgumentError("pass path or index, not both")
            path = PLUGIN_SNAPSHOT if snapshot else PLUGIN_STREAM
            params = {"index": index}
        elif path is None:  # the plugin's default camera (its default index), any platform
            path = PLUGIN_SNAPSHOT if snapshot else PLUGIN_STREAM
        if (
            isinstance(read_timeout, bool)
            or not isinstance(read_timeout, int | float)
            or not read_timeout > 0
        ):
            raise InvalidArgumentError("read_timeout must be a positive number of seconds")
        base = self._funnel.stream_timeout
        sock_connect = base.sock_connect
        sock_read: float | None = read_timeout
        if timeout is not None:
            sock_connect = timeout.sock_connect or timeout.connect or sock_connect
            sock_read = timeout.sock_read or sock_read
        attempt = aiohttp.ClientTimeout(total=None, sock_connect=sock_connect, sock_read=sock_read)
        # A stream holds its connection for its life: the stream pool (snapshots: requests).
        return self._funnel.call(
            "GET", path, params=params, timeout=attempt, retry=retry, stream=not snapshot
        )

    def frames(
        self,
        path: str | None = None,
        *,
        index: int | None = None,
        max_fps: float | None = None,
        reconnect: bool | ReconnectPolicy = False,
        read_timeout: float = 15.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        shared: bool = False,
        buffer: int | None = None,
        linger: float | None = None,
    ) -> FrameStream:
        """Stream frames: ``async with printer.webcam.frames() as frames: async for f in frames``.

        Args:
            path: the printer's MJPEG URL path (default ``/webcam/?action=stream``).
            index: use the printer-agnostic plugin API's webcam ``index`` instead of a path.
            max_fps: drop frames arriving faster than this (dropped frames are not copied).
            reconnect: renew the stream when the relay ends it (each lasts at most the
                account's ``max_webcam_stream_seconds``), with backoff on 609 and on
                temporary failures; ``True`` or a :class:`oe_async.ReconnectPolicy`.
            read_timeout: seconds each read may wait for data (there is no total limit).
            max_frame_size: the largest frame accepted (:class:`oe_async.MJPEGError`).
            shared: share one upstream stream with every other ``shared=True`` consumer of
                the same camera (same ``path`` or ``index``, ``reconnect``, ``read_timeout``
                and ``max_frame_size``) of this printer connection, instead of opening one
                of its own. Each consumer keeps only its latest ``buffer`` frames: one that
                is slower than the camera skips frames (counted in ``dropped``) and never
                slows the stream or another consumer. A consumer that joins a running
                stream starts at its next frame. The first consumer opens the stream, the
                last one leaving closes it after ``linger`` seconds; renewals, 609
                back-offs and errors are the stream's, seen by every consumer once.
            buffer: frames a shared consumer may fall behind (default 2).
            linger: seconds a shared stream stays open after its last consumer left, for a
                page reload (default 2; 0 closes at once). Closing the client ends it.

        Frames carry continuous ``index`` values across renewals, ``received_at``,
        ``timestamp`` (``X-Timestamp``) and ``transform`` (``x-oe-webcam-transform``).
        A stream of its own (the default) delivers every frame, reading no faster than
        its consumer; re-serving a camera to many viewers wants ``shared=True``.

        """
        policy = ReconnectPolicy() if reconnect is True else reconnect or None
        if policy is not None and not isinstance(policy, ReconnectPolicy):
            raise InvalidArgumentError("reconnect must be a bool or a ReconnectPolicy")
        # With a reconnect policy the stream owns retries: the funnel must not retry as well.
        call = self._call(
            path,
            index=index,
            read_timeout=read_timeout,
            snapshot=False,
            retry=RetryPolicy.never() if policy is not None else None,
        )
        if not shared:
            if buffer is not None or linger is not None:
                raise InvalidArgumentError("buffer and linger are for shared streams (shared=True)")
            return FrameStream(
                self._funnel, call, max_fps=max_fps, reconnect=policy, max_frame_size=max_frame_size
            )
        buffer = DEFAULT_BUFFER if buffer is None else buffer
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InvalidArgumentError("buffer must be an integer >= 1")
        linger = DEFAULT_LINGER if linger is None else linger
        if (
            isinstance(linger, bool)
            or not isinstance(linger, int | float)
            or not 0 <= linger < math.inf
        ):
            raise InvalidArgumentError("linger must be a number of seconds >= 0")
        key = (
            call.method,
            str(call.path),
            _frozen(call.params),
            call.timeout,
            call.retry,
            policy,
            max_frame_size,
        )
        join = functools.partial(self._shared_stream, key, call, policy, max_frame_size)
        return _SharedFrames(join, max_fps=max_fps, buffer=buffer, linger=linger)

    def _shared_stream(
        self,
        key: Hashable,
        call: Call,
        policy: ReconnectPolicy | None,
        max_frame_size: int,
    ) -> _SharedStream:
        """The running shared stream for ``key``, or a new one."""
        stream = self._shared.get(key)
        if stream is None or stream.stopped:
            now = time.monotonic()
            for old in [k for k, (until, _) in self._holds.items() if until <= now]:
                del self._holds[old]
            stream = self._shared[key] = _SharedStream(
                self._funnel,
                call,
                reconnect=policy,
                max_frame_size=max_frame_size,
                hold=self._holds.pop(key, None),
                done=functools.partial(self._shared_stream_done, key),
            )
        return stream

    def _shared_stream_done(self, key: Hashable, stream: _SharedStream, hold: _Hold | None) -> None:
        if self._shared.get(key) is stream:
            del self._shared[key]
        if hold is not None:
            self._holds[key] = hold

    async def snapshot(
        self,
        path: str | None = None,
        *,
        index: int | None = None,
        from_stream: bool = False,
        read_timeout: float = 15.0,
        max_size: int = DEFAULT_MAX_FRAME_SIZE,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Frame:
        """Fetch one webcam image as a :class:`oe_async.Frame` (JPEG bytes in ``.data``).

        Args:
            path: one of the printer's own snapshot URLs (e.g. OctoPrint's
                ``/webcam/?action=snapshot``), or a stream's when ``from_stream`` is true;
                default: the printer's default camera through the plugin API.
            index: the plugin API's webcam ``index`` instead of the default camera.
            from_stream: take the first frame of an MJPEG stream instead.
            read_timeout: seconds each read may wait for data.
            max_size: the largest image accepted (:class:`oe_async.MJPEGError`).
            timeout: the overall deadline in seconds, covering every attempt and the whole
                body (default: the client's ``timeout``, 30 s unless set); a
                ``ClientTimeout`` sets its ``total`` as the deadline (``total=None`` opts
                out) and its other fields per attempt.
            retry: this call's retry policy (default: the client's).

        Raises :class:`oe_async.RequestTimeoutError` when the deadline passes (a server
        that drips bytes included), :class:`oe_async.UnexpectedResponseError` for a flood
        of tiny HTTP chunks, and what every request raises.

        """
        # The funnel validates `timeout` and fills in the client's default.
        deadline_timeout = self._funnel.call("GET", "/", timeout=timeout).timeout
        deadline = deadline_timeout.total
        scope = asyncio.timeout(deadline)
        try:
            async with scope:
                if from_stream:
                    return await self._first_frame(
                        path,
                        index=index,
                        read_timeout=read_timeout,
                        max_size=max_size,
                        retry=retry,
                        timeout=deadline_timeout,
                    )
                call = self._call(
                    path,
                    index=index,
                    read_timeout=read_timeout,
                    snapshot=True,
                    retry=retry,
                    timeout=deadline_timeout,
                )
                return await self._read_snapshot(call, max_size)
        except TimeoutError:
            if not scope.expired():
                raise
            raise RequestTimeoutError(
                f"the webcam snapshot did not arrive within its {deadline} s deadline"
            ) from None

    async def _first_frame(
        self,
        path: str | None,
        *,
        index: int | None,
        read_timeout: float,
        max_size: int,
        retry: RetryPolicy | None,
        timeout: aiohttp.ClientTimeout,
    ) -> Frame:
        call = self._call(
            path,
            index=index,
            read_timeout=read_timeout,
            snapshot=False,
            retry=retry,
            timeout=timeout,
        )
        async with FrameStream(
            self._funnel, call, max_fps=None, reconnect=None, max_frame_size=max_size
        ) as stream:
            async for frame in stream:
                return frame
        raise MJPEGError("the webcam stream ended before its first frame")

    async def _read_snapshot(self, call: Call, max_size: int) -> Frame:
        try:
            async with self._funnel.send(call) as resp:
                if is_json_type(resp.content_type):  # a plugin envelope, never an image
                    raise await _json_answer_error(resp, self._funnel.secrets)
                if resp.content_length is not None and resp.content_length > max_size:
                    raise MJPEGError(
                        f"snapshot larger than {max_size} bytes ({resp.content_length})"
                    )
                guard = ChunkFloodGuard(f"the snapshot {display_path(resp.url)}")
                chunks: list[bytes] = []
                size = 0
                while True:
                    chunk, end_of_chunk = await read_chunk(resp.content)
                    if not chunk and not end_of_chunk:
                        break
                    guard.check(chunk, end_of_chunk=end_of_chunk)
                    size += len(chunk)
                    if size > max_size:
                        raise MJPEGError(f"snapshot larger than {max_size} bytes")
                    if chunk:
                        chunks.append(chunk)
                return Frame(
                    data=chunks[0] if len(chunks) == 1 else b"".join(chunks),
                    index=0,
                    received_at=time.monotonic(),
                    content_type=resp.content_type or "image/jpeg",
                    transform=resp.headers.get(TRANSFORM_HEADER),
                )
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise
