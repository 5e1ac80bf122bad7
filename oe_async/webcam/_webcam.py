"""``printer.webcam``: frame streams (own or shared) and snapshots of a printer's cameras."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Hashable, Mapping
from typing import Any

import aiohttp

from oe_async._funnel import Call, Feature, Funnel
from oe_async._http import display_path, read_bounded
from oe_async._plugin_wire import (
    is_json_type,
    plugin_error_from_http,
)
from oe_async.errors import (
    InvalidArgumentError,
    PrinterHTTPError,
    RequestTimeoutError,
)
from oe_async.mjpeg import DEFAULT_MAX_FRAME_SIZE, Frame, MJPEGError
from oe_async.retry import ReconnectPolicy, RetryPolicy
from oe_async.webcam._shared import (
    DEFAULT_BUFFER,
    DEFAULT_LINGER,
    Hold,
    SharedFrames,
    SharedStream,
    UpstreamReader,
)
from oe_async.webcam._stream import (
    PLUGIN_SNAPSHOT,
    PLUGIN_STREAM,
    TRANSFORM_HEADER,
    FrameStream,
    json_answer_error,
)


def _frozen(params: Any) -> Hashable:
    """A hashable form of a call's query parameters (part of a shared stream's key)."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in params.items()))
    return repr(params)


class Webcam(Feature):
    """Webcam streams and snapshots: ``printer.webcam``.

    Without ``path`` or ``index``, the printer's default camera through OctoEverywhere's
    printer-agnostic plugin API (``webcam/stream``, ``webcam/snapshot``), on every platform
    it supports; ``index`` picks another camera of ``printer.plugin.webcams()``; ``path``
    is one of the printer's own MJPEG URLs (OctoPrint's ``/webcam/?action=stream``).
    A plugin answer that is not an image (``{"Status": 754}`` for a camera the printer
    does not have) raises its :class:`oe_async.PluginCommandError`.
    """

    __slots__ = ("_holds", "_shared")

    def __init__(self, funnel: Funnel) -> None:
        super().__init__(funnel)
        #: The shared streams running now, by what identifies their upstream.
        self._shared: dict[Hashable, SharedStream] = {}
        #: Back-offs (609...) that outlived their shared stream: the next one waits them out.
        self._holds: dict[Hashable, Hold] = {}

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
        base = self._funnel.transport.stream_timeout
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
        return SharedFrames(join, max_fps=max_fps, buffer=buffer, linger=linger)

    def _shared_stream(
        self,
        key: Hashable,
        call: Call,
        policy: ReconnectPolicy | None,
        max_frame_size: int,
    ) -> SharedStream:
        """The running shared stream for ``key``, or a new one."""
        stream = self._shared.get(key)
        if stream is None or stream.stopped:
            now = time.monotonic()
            for old in [k for k, (until, _) in self._holds.items() if until <= now]:
                del self._holds[old]
            reader = UpstreamReader(
                self._funnel, call, reconnect=policy, max_frame_size=max_frame_size
            )
            stream = self._shared[key] = SharedStream(
                self._funnel,
                reader,
                hold=self._holds.pop(key, None),
                done=functools.partial(self._shared_stream_done, key),
            )
        return stream

    def _shared_stream_done(self, key: Hashable, stream: SharedStream, hold: Hold | None) -> None:
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
                call = self._call(
                    path,
                    index=index,
                    read_timeout=read_timeout,
                    snapshot=not from_stream,
                    retry=retry,
                    timeout=deadline_timeout,
                )
                if from_stream:
                    return await self._first_frame(call, max_size)
                return await self._read_snapshot(call, max_size)
        except TimeoutError:
            if not scope.expired():
                raise
            raise RequestTimeoutError(
                f"the webcam snapshot did not arrive within its {deadline} s deadline"
            ) from None

    async def _first_frame(self, call: Call, max_size: int) -> Frame:
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
                    raise await json_answer_error(resp, self._funnel.secrets)
                if resp.content_length is not None and resp.content_length > max_size:
                    raise MJPEGError(
                        f"snapshot larger than {max_size} bytes ({resp.content_length})"
                    )
                data = await read_bounded(
                    resp,
                    max_size,
                    what=f"the snapshot {display_path(resp.url)}",
                    too_large=lambda: MJPEGError(f"snapshot larger than {max_size} bytes"),
                )
                return Frame(
                    data=data,
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
