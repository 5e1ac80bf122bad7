"""Blocking calls off the event loop, and clean-ups that survive a cancellation.

Every file operation of a transfer (stat, open, read, write, fsync, rename, unlink) runs
in the default executor through these helpers; a cancelled caller still waits for the
thread (and releases what it acquired) before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def acquire_off_loop(func: Callable[..., T], *args: Any, release: Callable[[T], object]) -> T:
    """Run a blocking call that acquires a resource (opens a file) in the executor.

    If the caller is cancelled meanwhile, the thread still finishes and returns the
    resource: wait for it and ``release`` it (off the loop) before letting the
    cancellation through, so nothing is leaked.
    """
    future = asyncio.get_running_loop().run_in_executor(None, func, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await run_to_completion(_release_result(future, release))
        raise


async def _release_result(future: asyncio.Future[T], release: Callable[[T], object]) -> None:
    try:
        resource = await future
    except Exception:  # noqa: BLE001 (it failed: nothing was acquired)
        return
    await off_loop(release, resource)


async def settle(future: asyncio.Future[Any]) -> None:
    """Wait for a future (executor work, a clean-up task) to finish, however often cancelled.

    The future's own error is ignored (the caller is cleaning up). A cancellation of the
    caller, one or several, is re-raised once the future is done: a second cancel during
    the clean-up of the first no longer cuts it short.
    """
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as err:
            if not future.done():
                cancelled = err  # the caller was cancelled: the work goes on, wait for it
                continue
            if not future.cancelled():
                cancelled = err  # cancelled just as it finished
        except Exception:  # noqa: BLE001, S110 (clean-up path: the result does not matter)
            pass
        break
    if cancelled is not None:
        raise cancelled


async def run_to_completion(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run a clean-up coroutine to its end, whatever cancellations reach the caller meanwhile.

    It runs in a task of its own (nobody else cancels it); a cancellation of the caller is
    re-raised once it is done (:func:`settle`).
    """
    await settle(asyncio.ensure_future(cleanup))


async def off_loop_to_completion(func: Callable[..., T], *args: Any) -> T:
    """:func:`off_loop`, but a cancelled caller first waits for the thread to finish."""
    future = asyncio.get_running_loop().run_in_executor(None, func, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await settle(future)
        raise


async def finish_off_loop(func: Callable[..., object], *args: Any) -> None:
    """Run a blocking clean-up call in the executor and wait for it even if cancelled.

    Used in ``finally``/``except`` paths so a temp file is really gone (or a file really
    closed) by the time the cancellation reaches the caller.
    """
    await settle(asyncio.get_running_loop().run_in_executor(None, func, *args))
