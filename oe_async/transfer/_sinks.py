"""Local file sinks: a download written off the loop, installed atomically or not at all.

Bytes go to a new temporary file beside the destination (:func:`create_temp`), in batches
written by the executor (:class:`FileSink`); on success the file is fsynced and renamed
into place (:func:`install_undoably`, which a cancellation undoes), on failure it is
deleted (:func:`abandon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import IO, Final

from oe_async.errors import InvalidArgumentError

from ._offload import off_loop, settle

_LOGGER = logging.getLogger("oe_async")

#: Download writes are batched to this size.
WRITE_BATCH: Final = 1024 * 1024
#: Fresh names tried for a temporary file (or the old ``dest`` kept aside) before giving up.
NAME_TRIES: Final = 16


class FileSink:
    """Writes batches to a file in the executor, one write in flight while reading on."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: asyncio.Future[int] | None = None

    async def write(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= WRITE_BATCH:
            await self._flush_buffer()

    async def _flush_buffer(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, self._handle.write, data)

    async def flush(self) -> None:
        await self._flush_buffer()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def discard(self) -> None:
        """Drop buffered data; wait for an in-flight write (its result is irrelevant)."""
        self._buffer.clear()
        self._buffered = 0
        if self._pending is not None:
            pending, self._pending = self._pending, None
            with contextlib.suppress(OSError):
                await asyncio.shield(pending)

    async def truncate(self) -> None:
        await self.discard()
        await off_loop(self._truncate)

    def _truncate(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()


#: How the temporary file is created: new (never an existing file or a symlink), write-only.
_CREATE_FLAGS: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _fresh_name(base: str, suffix: str) -> str:
    """``base`` + a random part + ``suffix``: a name nobody can create ahead of us."""
    return f"{base}.{secrets.token_hex(6)}{suffix}"


def create_temp(dest: Path) -> tuple[IO[bytes], str]:
    """Open a new temporary file beside ``dest`` (same file system, so rename is atomic).

    Created with mode 0666 and the process umask, like any new file (the finished download
    is this file renamed): ``tempfile.mkstemp`` made every download 0600 whatever the umask.
    """
    parent = dest.parent
    if dest.is_dir():
        raise InvalidArgumentError(f"destination {str(dest)!r} is a directory")
    if not parent.is_dir():
        raise InvalidArgumentError(f"destination folder {str(parent)!r} does not exist")
    for _ in range(NAME_TRIES):
        temp = _fresh_name(str(parent / f".{dest.name}"), ".part")
        try:
            fd = os.open(temp, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue  # taken (by a file, a folder or a link): draw another name
        try:
            return os.fdopen(fd, "wb"), temp
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
    raise FileExistsError(f"no free temporary name beside {str(dest)!r}")


def finish(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _keep_aside(temp: str, dest: Path) -> tuple[str | None, bool]:
    """Keep the current ``dest`` under a fresh name beside it: ``(that name, moved)``.

    A hard link where the file system has them, else ``dest`` moved aside (``moved``);
    ``(None, False)`` when there is no ``dest``. Each name is new and random (a name
    somebody else holds, a folder say, is skipped): in a shared writable folder nobody can
    make the final rename fail by creating the name first.
    """
    links = True
    for _ in range(NAME_TRIES):
        backup = _fresh_name(temp, ".old")
        if links:
            try:
                os.link(dest, backup, follow_symlinks=False)
            except FileNotFoundError:
                return None, False
            except FileExistsError:
                continue
            except OSError:  # no hard links here (FAT, some network shares): move it aside
                links = False
            else:
                return backup, False
        if os.path.lexists(backup):
            continue
        try:
            os.rename(dest, backup)
        except FileNotFoundError:
            return None, False
        except (IsADirectoryError, FileExistsError, NotADirectoryError):
            continue  # created meanwhile: another name
        return backup, True
    raise FileExistsError(f"no free name to keep the old {str(dest)!r} aside")


def install(temp: str, dest: Path, decision: dict[str, str]) -> None:
    """Rename ``temp`` onto ``dest`` in a worker thread, undoably until the loop decides.

    The old ``dest`` is kept aside (:func:`_keep_aside`) until the thread and the event
    loop agree: ``decision.setdefault`` is atomic, so the first of "keep" (this thread,
    rename done) and "undo" (the loop, its task cancelled meanwhile) wins. On "undo" the
    old file goes back (or the new one is removed).
    """
    backup, moved = _keep_aside(temp, dest)
    try:
        os.replace(temp, dest)
    except BaseException:
        if backup is not None and moved:
            os.replace(backup, dest)
        elif backup is not None:
            os.unlink(backup)
        raise
    if decision.setdefault("decision", "keep") == "undo":
        if backup is not None:
            os.replace(backup, dest)
        else:
            os.unlink(dest)
    elif backup is not None:
        with contextlib.suppress(OSError):
            os.unlink(backup)


async def install_undoably(temp: str, dest: Path) -> None:
    """Move the finished download into place; a cancellation meanwhile leaves ``dest`` as it was.

    The rename runs in the executor and cannot be stopped, so a task cancelled while it
    runs tells the thread to undo it and waits for that before the cancellation goes on.
    Only a cancellation arriving after the thread has finished everything (the call's work
    was done) leaves the new ``dest`` in place.
    """
    decision: dict[str, str] = {}
    future = asyncio.get_running_loop().run_in_executor(None, install, temp, dest, decision)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        if decision.setdefault("decision", "undo") == "keep":
            _LOGGER.debug("download_to cancelled after its file was in place")
        await settle(future)
        raise


def discard(handle: IO[bytes], temp: str) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


async def abandon(sink: FileSink, handle: IO[bytes], temp: str) -> None:
    """Drop a download's buffered data, close its file and delete it."""
    await sink.discard()
    await off_loop(discard, handle, temp)
