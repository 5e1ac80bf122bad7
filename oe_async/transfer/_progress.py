"""Progress callbacks: monotonic, at least every MiB, completion reported once."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Final

from oe_async.errors import InvalidArgumentError

#: ``progress(bytes_done, total_or_None)``; may be a plain function or a coroutine function.
ProgressCallback = Callable[[int, int | None], Awaitable[None] | None]
#: Progress is reported at least this often (and once at completion).
PROGRESS_STEP: Final = 1024 * 1024


class Progress:
    """Reports ``(done, total)`` monotonically, every ``PROGRESS_STEP`` bytes and at the end.

    The completion call happens exactly once, with ``total`` filled in.

    Survives retries and resumes: a restart from zero reports nothing until it passes
    what was already reported.
    """

    __slots__ = ("_callback", "_done", "_finished", "_reported", "total")

    def __init__(self, callback: ProgressCallback | None, total: int | None) -> None:
        if callback is not None and not callable(callback):
            raise InvalidArgumentError("progress must be a callable")
        self._callback = callback
        self.total: int | None = total
        self._done = 0
        self._reported = -1
        self._finished = False

    @property
    def active(self) -> bool:
        """True when a callback listens."""
        return self._callback is not None

    def restart(self, done: int = 0) -> None:
        """A new attempt starts at ``done`` bytes."""
        self._done = done

    async def advance(self, count: int) -> None:
        """Account for ``count`` more bytes."""
        self._done += count
        if self._callback is not None and self._done - self._reported >= PROGRESS_STEP:
            await self._emit(self._done, self.total)

    async def finish(self) -> None:
        """Report completion once."""
        if self._finished:
            return
        self._finished = True
        if self._callback is not None:
            total = self.total if self.total is not None else self._done
            await self._emit(max(self._done, self._reported), total)

    async def _emit(self, done: int, total: int | None) -> None:
        assert self._callback is not None  # noqa: S101 (checked by callers)
        if done < self._reported:
            return
        self._reported = done
        result = self._callback(done, total)
        if inspect.isawaitable(result):
            await result
