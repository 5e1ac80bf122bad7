"""Webcam streams and snapshots: the thin aiohttp adapter around :mod:`oe_async.mjpeg`.

``printer.webcam.frames()`` opens an MJPEG stream through the request funnel and yields
:class:`oe_async.mjpeg.Frame` objects; with ``reconnect`` it renews the stream when the relay
ends it (each stream lasts at most the account's ``max_webcam_stream_seconds``), backs off on
609 and on temporary failures, and keeps frame indices continuous.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, Final, Literal, Self

import aiohttp

from ._funnel import Call, Funnel
from ._http import TRANSPORT_ERRORS, ChunkFloodGuard, display_path, read_chunk, read_limited
from ._plugin_wire import (
    MAX_ENVELOPE_SIZE,
    PLUGIN_PREFIX,
    content_error,
    is_json_type,
    plugin_error_from_http,
)
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


async def _json_answer_error(resp: aiohttp.ClientResponse) -> OctoEverywhereError:
    """A webcam answered JSON (the plugin's ``{"Status": 754}`` for a missing camera)."""
    what = f"the webcam {display_path(resp.url)}"
    return content_error(await read_limited(resp, MAX_ENVELOPE_SIZE, what=what), what=what)


#: Where a :class:`FrameStream` is: ``"connecting"`` (opening a stream), ``"streaming"``
#: (a stream is open), ``"waiting"`` (backing off before the next open, after a failure
#: or a 609), ``"closed"`` (ended; iteration is over).
StreamState = Literal["connecting", "streaming", "waiting", "closed"]


class FrameStream:
    """Frames from an MJPEG stream; use as ``async with printer.webcam.frames() as frames``.

    Usable as a plain async iterator too; the connection is released when the iteration
    ends, raises, is cancelled, or the ``async with`` block exits.

    Every read is guarded against a flood of tiny HTTP chunks (the guard ``get_json``
    uses): such a stream ends in :class:`oe_async.UnexpectedResponseError`.

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
        if max_fps is not None and (
            isinstance(max_fps, bool) or not isinstance(max_fps, int | float) or not max_fps > 0
        ):
            raise InvalidArgumentError("max_fps must be a positive number")
        self._funnel = funnel
        self._call = call
        self._interval = 1.0 / max_fps if max_fps else 0.0
        self._policy = reconnect
        self._max_frame_size = max_frame_size
        self._resp: aiohttp.ClientResponse | None = None
        self._parser: MJPEGParser | None = None
        self._guard: ChunkFloodGuard | None = None
        self._guard_index = 0
        self._frames: list[Frame] = []
        self._next_frame_at = 0
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
        self._next_frame_at = 0
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
        self._guard = None

    async def __anext__(self) -> Frame:
        try:
            return await self._next_frame()
        except BaseException:
            # Errors and cancellation end the stream here, so a plain `async for` that
            # stops early never leaves a connection behind.
            self._finish()
            raise

    async def _next_frame(self) -> Frame:
        while True:
            frames = self._frames
            if self._next_frame_at < len(frames):
                frame = frames[self._next_frame_at]
                self._next_frame_at += 1
                return frame
            if self._finished:
                raise StopAsyncIteration
            resp = self._resp
            if resp is None:
                await self._open()
                continue
            parser = self._parser
            assert parser is not None  # noqa: S101 (set with the response)
            try:
                chunk, end_of_chunk = await read_chunk(resp.content)
            except TRANSPORT_ERRORS as err:
                error = self._funnel.error_for(err, self._call.method, resp.url.path)
                await self._stream_ended(error)
                continue
            if parser.next_index != self._guard_index or self._guard is None:
                # Count chunks per frame: a flood shows within one frame, and hours of
                # healthy stream must not hide one that starts later.
                self._guard_index = parser.next_index
                self._guard = ChunkFloodGuard(f"the webcam stream {display_path(resp.url)}")
            self._guard.check(chunk, end_of_chunk=end_of_chunk)
            if chunk:
                frames = parser.feed(chunk)
            elif end_of_chunk:
                continue
            else:
                frames = parser.close()
            if frames:
                self._last_error = None
                self._frames_this_stream += len(frames)
                self._frames = frames
                self._next_frame_at = 0
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
                error = await _json_answer_error(resp)
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
        self._guard = None
        self._state = "streaming"


class Webcam:
    """Webcam streams and snapshots: ``printer.webcam``.

    Without ``path`` or ``index``, the printer's default camera through OctoEverywhere's
    printer-agnostic plugin API (``webcam/stream``, ``webcam/snapshot``), on every platform
    it supports; ``index`` picks another camera of ``printer.plugin.webcams()``; ``path``
    is one of the printer's own MJPEG URLs (OctoPrint's ``/webcam/?action=stream``).
    A plugin answer that is not an image (``{"Status": 754}`` for a camera the printer
    does not have) raises its :class:`oe_async.PluginCommandError`.
    """

    __slots__ = ("_funnel",)

    def __init__(self, funnel: Funnel) -> None:
        self._funnel = funnel

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

        Frames carry continuous ``index`` values across renewals, ``received_at``,
        ``timestamp`` (``X-Timestamp``) and ``transform`` (``x-oe-webcam-transform``).

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
        return FrameStream(
            self._funnel, call, max_fps=max_fps, reconnect=policy, max_frame_size=max_frame_size
        )

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
                    raise await _json_answer_error(resp)
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
