"""Webcam streams and snapshots: the thin aiohttp adapter around :mod:`oe_async.mjpeg`.

``printer.frames()`` opens an MJPEG stream through the request funnel and yields
:class:`~oe_async.mjpeg.Frame` objects; with ``reconnect`` it renews the stream when the relay
ends it (each stream lasts at most the account's ``max_webcam_stream_seconds``), backs off on
609 and on temporary failures, and keeps frame indices continuous.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import aiohttp

from ._http import TRANSPORT_ERRORS, transport_error
from .errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterHTTPError,
    RelayError,
)
from .mjpeg import Frame, MJPEGError, MJPEGParser
from .plugin_api import PLUGIN_PREFIX, plugin_error_from_http
from .retry import ReconnectPolicy, RetryPolicy, is_temporary

if TYPE_CHECKING:
    from .connection import PrinterConnection, _Call

__all__ = ["FrameStream", "ReconnectPolicy"]

_LOGGER = logging.getLogger(__package__)

DEFAULT_STREAM_PATH: Final = "/webcam/?action=stream"
DEFAULT_SNAPSHOT_PATH: Final = "/webcam/?action=snapshot"
PLUGIN_STREAM: Final = PLUGIN_PREFIX + "webcam/stream"
PLUGIN_SNAPSHOT: Final = PLUGIN_PREFIX + "webcam/snapshot"
TRANSFORM_HEADER: Final = "x-oe-webcam-transform"
READ_SIZE: Final = 256 * 1024


class FrameStream:
    """Frames from an MJPEG stream; use as ``async with printer.frames() as frames``.

    Usable as a plain async iterator too; the connection is released when the iteration
    ends, raises, is cancelled, or the ``async with`` block exits.

    Attributes:
        reconnects: how many times the stream was reopened.
        skipped: frames dropped by ``max_fps`` (never copied).

    """

    def __init__(
        self,
        printer: PrinterConnection,
        call: _Call,
        *,
        max_fps: float | None,
        reconnect: ReconnectPolicy | None,
        max_frame_size: int,
    ) -> None:
        if max_fps is not None and (isinstance(max_fps, bool) or not max_fps > 0):
            raise InvalidArgumentError("max_fps must be a positive number")
        self._printer = printer
        self._call = call
        self._interval = 1.0 / max_fps if max_fps else 0.0
        self._policy = reconnect
        self._max_frame_size = max_frame_size
        self._resp: aiohttp.ClientResponse | None = None
        self._parser: MJPEGParser | None = None
        self._queue: collections.deque[Frame] = collections.deque()
        self._next_index = 0
        self._next_allowed = float("-inf")
        self._failures = 0
        self._frames_this_stream = 0
        self._opened = False
        self._finished = False
        self.reconnects = 0
        self.skipped = 0

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

    async def aclose(self) -> None:
        """Stop the stream and release its connection (idempotent)."""
        self._finished = True
        self._queue.clear()
        self._drop_response()

    def _drop_response(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()  # unread stream: close, do not try to reuse the connection
        if self._parser is not None:
            self.skipped += self._parser.skipped
            self._next_index = self._parser.next_index
            self._parser = None

    async def __anext__(self) -> Frame:
        try:
            return await self._next_frame()
        except BaseException:
            # Errors and cancellation end the stream here, so a plain `async for` that
            # stops early never leaves a connection behind.
            self._finished = True
            self._drop_response()
            raise

    async def _next_frame(self) -> Frame:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._finished:
                raise StopAsyncIteration
            if self._resp is None:
                await self._open()
                continue
            assert self._parser is not None  # noqa: S101 (set with the response)
            try:
                chunk = await self._resp.content.readany()
            except TRANSPORT_ERRORS as err:
                error = transport_error(err, self._call.method, self._resp.url.path)
                await self._stream_ended(error)
                continue
            if chunk:
                self._accept(self._parser.feed(chunk))
            else:
                self._accept(self._parser.close())
                await self._stream_ended(None)

    def _accept(self, frames: list[Frame]) -> None:
        for frame in frames:
            self._frames_this_stream += 1
            if frame.received_at < self._next_allowed:
                self.skipped += 1
                continue
            if self._interval:
                self._next_allowed = frame.received_at + self._interval
                if self._parser is not None:
                    self._parser.skip_until = self._next_allowed
            self._queue.append(frame)

    async def _stream_ended(self, error: OctoEverywhereError | None) -> None:
        """The server ended (or dropped) the stream: renew it or finish."""
        had_frames = self._frames_this_stream > 0
        self._drop_response()
        if self._policy is None:
            self._finished = True
            if error is not None:
                raise error
            return
        if had_frames:
            self._failures = 0
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
            "webcam stream failed (%s); reopening in %.2f s (%d of %d)",
            type(error).__name__,
            delay,
            self._failures,
            self._policy.max_failures,
        )
        await asyncio.sleep(delay)

    async def _open(self) -> None:
        try:
            resp = await self._printer._open(self._call)
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
            )
        except MJPEGError:
            self._drop_response()
            raise
        self._parser.skip_until = self._next_allowed


def stream_call(
    printer: PrinterConnection,
    path: str | None,
    *,
    index: int | None,
    read_timeout: float,
    snapshot: bool,
    retry: RetryPolicy | None = None,
) -> _Call:
    """Build the funnel call for a stream or snapshot (the plugin API when ``index`` is set)."""
    params: dict[str, Any] | None = None
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidArgumentError("index must be a non-negative integer")
        if path is not None:
            raise InvalidArgumentError("pass path or index, not both")
        path = PLUGIN_SNAPSHOT if snapshot else PLUGIN_STREAM
        params = {"index": index}
    elif path is None:
        path = DEFAULT_SNAPSHOT_PATH if snapshot else DEFAULT_STREAM_PATH
    if isinstance(read_timeout, bool) or not read_timeout > 0:
        raise InvalidArgumentError("read_timeout must be a positive number of seconds")
    base = printer.client.stream_timeout
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=base.sock_connect, sock_read=read_timeout
    )
    return printer._call("GET", path, params=params, timeout=timeout, retry=retry)


def frames(
    printer: PrinterConnection,
    path: str | None,
    *,
    index: int | None,
    max_fps: float | None,
    reconnect: bool | ReconnectPolicy,
    read_timeout: float,
    max_frame_size: int,
) -> FrameStream:
    """Implement :meth:`PrinterConnection.frames`."""
    policy = ReconnectPolicy() if reconnect is True else reconnect or None
    if policy is not None and not isinstance(policy, ReconnectPolicy):
        raise InvalidArgumentError("reconnect must be a bool or a ReconnectPolicy")
    # With a reconnect policy the stream owns retries: the funnel must not retry as well.
    call = stream_call(
        printer,
        path,
        index=index,
        read_timeout=read_timeout,
        snapshot=False,
        retry=RetryPolicy.never() if policy is not None else None,
    )
    return FrameStream(
        printer, call, max_fps=max_fps, reconnect=policy, max_frame_size=max_frame_size
    )


async def snapshot(
    printer: PrinterConnection,
    path: str | None,
    *,
    index: int | None,
    from_stream: bool,
    read_timeout: float,
    max_size: int,
) -> Frame:
    """Implement :meth:`PrinterConnection.snapshot`."""
    if from_stream:
        async with frames(
            printer,
            path,
            index=index,
            max_fps=None,
            reconnect=False,
            read_timeout=read_timeout,
            max_frame_size=max_size,
        ) as stream:
            async for frame in stream:
                return frame
        raise MJPEGError("the webcam stream ended before its first frame")
    call = stream_call(printer, path, index=index, read_timeout=read_timeout, snapshot=True)
    try:
        async with printer._send(call) as resp:
            if resp.content_length is not None and resp.content_length > max_size:
                raise MJPEGError(f"snapshot larger than {max_size} bytes ({resp.content_length})")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > max_size:
                    raise MJPEGError(f"snapshot larger than {max_size} bytes")
                chunks.append(chunk)
            return Frame(
                data=b"".join(chunks),
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
