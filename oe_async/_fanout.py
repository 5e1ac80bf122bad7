"""One frame stream handed to many consumers, each with a small buffer of its own (no I/O).

:class:`FrameFanout` is the bookkeeping of a shared webcam stream: the task that reads the
camera calls :meth:`FrameFanout.publish` for every frame and :meth:`FrameFanout.end` once;
each consumer holds a :class:`FrameSeat`.

- A seat keeps at most ``buffer`` frames. When a consumer is slower than the camera the
  oldest frame it has not taken is dropped (``dropped`` counts them): a slow consumer never
  holds up the reader or another consumer, and what it sees stays close to live.
- ``max_fps`` is applied per seat on the frames' ``received_at``, on the same schedule as
  :class:`oe_async.mjpeg.MJPEGParser` (one frame per interval with one frame of slack);
  ``skipped`` counts what it held back. :meth:`FrameFanout.threshold` is the earliest time
  any seat takes a frame again: the reader's parser need not copy a frame completed before.
- The end (``StopAsyncIteration`` or the stream's error) reaches every seat once, after the
  frames it still holds.
- A seat holds no reference to its consumer, so a consumer that is dropped without being
  closed is collected (and can leave in ``__del__``).

A frame already held is taken without waiting (:meth:`FrameSeat.take`); a consumer that has
to wait is handed its frame directly: :meth:`FrameSeat.wait` returns a future that
:meth:`FrameFanout.publish` resolves, so a frame costs each waiting consumer one wake-up.
"""

from __future__ import annotations

import asyncio
import collections
import math

from .mjpeg import Frame

__all__ = ["FrameFanout", "FrameSeat"]


class FrameSeat:
    """One consumer's place at a :class:`FrameFanout`.

    A consumer calls :meth:`take`, and :meth:`wait` only when that found nothing; a
    consumer cancelled while it waits must :meth:`close` the seat (and leave the fanout).

    Attributes:
        skipped: frames held back by ``max_fps``.
        dropped: frames this consumer was too slow to take (its buffer held newer ones).
        due: frames received before this ``time.monotonic()`` value are skipped.

    """

    __slots__ = ("_end", "_interval", "_queue", "_waiter", "dropped", "due", "skipped")

    def __init__(self, *, buffer: int, max_fps: float | None) -> None:
        self._queue: collections.deque[Frame] = collections.deque(maxlen=buffer)
        self._interval = 1.0 / max_fps if max_fps else 0.0
        self._waiter: asyncio.Future[Frame] | None = None
        self._end: BaseException | None = None
        self.due = -math.inf
        self.skipped = 0
        self.dropped = 0

    @property
    def ended(self) -> bool:
        """True once the stream's end reached this seat and nothing is left to take."""
        return self._end is not None and not self._queue

    def take(self) -> Frame | None:
        """The oldest frame held, or None when there is none (then :meth:`wait`).

        Raises:
            StopAsyncIteration: the stream ended and every frame was taken.
            BaseException: the stream's error, once; ``StopAsyncIteration`` after it.

        """
        if self._queue:
            return self._queue.popleft()
        end = self._end
        if end is not None:
            self._end = StopAsyncIteration()  # the error is delivered once
            raise end
        return None

    def wait(self) -> asyncio.Future[Frame]:
        """A future for the next frame (or the end), after :meth:`take` found nothing."""
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("FrameSeat.wait() called while another call is waiting")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiter = future
        return future

    def offer(self, frame: Frame) -> None:
        """Give this seat a frame (its waiting consumer, or its buffer)."""
        received = frame.received_at
        if received < self.due:
            self.skipped += 1
            return
        if self._interval:
            # A schedule, not "last delivered + interval": jitter must not drop frames.
            self.due = max(self.due + self._interval, received)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # (a consumer cancelled while waiting has left)
                waiter.set_result(frame)
                return
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
        queue.append(frame)

    def finish(self, error: BaseException | None) -> None:
        """The stream ended (``error`` None: normally); deliver it after the buffered frames.

        Frames still buffered are kept: the consumer takes them before the end.
        """
        if self._end is not None:
            return
        self._end = error if error is not None else StopAsyncIteration()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(self._end)
                self._end = StopAsyncIteration()

    def close(self) -> None:
        """The consumer left: drop what it holds; a waiting ``next()`` ends the iteration."""
        self._queue.clear()
        self.finish(None)


class FrameFanout:
    """The seats of one shared stream; see the module docstring."""

    __slots__ = ("_threshold", "seats")

    def __init__(self) -> None:
        self.seats: list[FrameSeat] = []
        self._threshold = math.inf

    def join(self, seat: FrameSeat) -> None:
        """Add a seat; it gets the frames published from now on."""
        self.seats.append(seat)
        self._threshold = min(self._threshold, seat.due)

    def leave(self, seat: FrameSeat) -> bool:
        """Remove a seat (no-op if it is not here); True when it was here."""
        try:
            self.seats.remove(seat)
        except ValueError:
            return False
        self._threshold = min((s.due for s in self.seats), default=math.inf)
        return True

    def threshold(self) -> float:
        """Frames completed before this ``time.monotonic()`` value go to no seat.

        ``-inf`` while a seat takes every frame, ``+inf`` with no seat at all.
        """
        return self._threshold

    def publish(self, frame: Frame) -> None:
        """Offer a frame to every seat."""
        threshold = math.inf
        for seat in self.seats:
            seat.offer(frame)
            threshold = min(threshold, seat.due)
        self._threshold = threshold

    def end(self, error: BaseException | None) -> None:
        """The stream ended: every seat gets ``error`` (or the end) once, then leaves."""
        seats, self.seats = self.seats, []
        self._threshold = math.inf
        for seat in seats:
            seat.finish(error)
