"""Shared streams: many consumers of one camera, one upstream stream read by one task.

``frames(shared=True)`` gives each consumer a :class:`SharedFrames`; the first one to read
starts a :class:`SharedStream`, whose task reads an :class:`UpstreamReader` (a
:class:`FrameStream` that reopens only while someone watches) and hands each frame to every
consumer's small buffer (:mod:`oe_async._fanout`). The last consumer leaving stops it, after
``linger`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from oe_async._fanout import FrameFanout, FrameSeat
from oe_async._funnel import Call, Funnel
from oe_async.errors import (
    ClientClosedError,
    CommunicationError,
    OctoEverywhereError,
    WebcamLimitError,
)
from oe_async.mjpeg import Frame
from oe_async.retry import ReconnectPolicy
from oe_async.webcam._stream import FrameStream, StreamState, check_max_fps

#: How long a shared stream stays open after its last consumer left (``linger``), seconds.
DEFAULT_LINGER: Final = 2.0
#: Frames a shared stream's consumer may fall behind before the oldest is dropped.
DEFAULT_BUFFER: Final = 2

#: A back-off that outlived its stream: (``time.monotonic()`` to wait until, why).
Hold = tuple[float, OctoEverywhereError]


class UpstreamReader(FrameStream):
    """The stream a :class:`SharedStream` reads, and the seats of those who watch it.

    It reopens only while someone watches, and copies no frame that no seat's ``max_fps``
    would take.
    """

    def __init__(
        self,
        funnel: Funnel,
        call: Call,
        *,
        reconnect: ReconnectPolicy | None,
        max_frame_size: int,
    ) -> None:
        super().__init__(
            funnel, call, max_fps=None, reconnect=reconnect, max_frame_size=max_frame_size
        )
        #: The consumers' seats: each frame read goes to every one of them.
        self.fanout = FrameFanout()
        self._gate = self.fanout.threshold

    async def _open(self) -> None:
        if not self.fanout.seats:  # everyone left while it lingered: no open for nobody
            self._finish()
            return
        await super()._open()

    def close_now(self) -> None:
        """End the stream and release its connection, synchronously."""
        self._finish()


class SharedStream:
    """One upstream stream of a camera, read by one task, and the consumers sharing it.

    The first consumer's :meth:`join` starts the reading task; :meth:`leave` by the last
    one stops it (after ``linger`` seconds if the stream is open). Frames go to every
    consumer through the reader's :class:`oe_async._fanout.FrameFanout`; renewals and
    back-offs are the reader's own (an :class:`UpstreamReader` with the consumers'
    reconnect policy), and its end or error reaches every consumer once.
    """

    def __init__(
        self,
        funnel: Funnel,
        reader: UpstreamReader,
        *,
        hold: Hold | None,
        done: Callable[[SharedStream, Hold | None], None],
    ) -> None:
        self._funnel = funnel
        self.reader = reader
        self.fanout = reader.fanout
        self._hold = hold
        self._done = done
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        #: True once the stream was ended (or is ending): it takes no new consumer.
        self.stopped = False

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
                self._task = self._funnel.transport.spawn(
                    self._run(), name="oe_async shared webcam stream"
                )
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
                if self._funnel.transport.closed
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


class SharedFrames(FrameStream):
    """One consumer's share of a :class:`SharedStream`: ``frames(shared=True)``.

    It takes its place on its first ``__anext__`` (creating the shared stream if it is the
    first) and leaves it when closed, cancelled, or garbage-collected.
    """

    def __init__(
        self,
        join: Callable[[], SharedStream],
        *,
        max_fps: float | None,
        buffer: int,
        linger: float,
    ) -> None:
        # No FrameStream.__init__: a share holds no connection of its own.
        check_max_fps(max_fps)
        self._join = join
        self._max_fps = max_fps
        self._buffer = buffer
        self._linger_seconds = linger
        self._shared: SharedStream | None = None
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
