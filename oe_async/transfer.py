"""Streaming uploads and downloads: progress, account limits, resume, no blocking I/O.

Bytes are streamed in chunks, never held whole in memory. Every file operation (stat,
open, read, write, fsync, rename, unlink) runs in the default executor, never on the event
loop. Everything goes through the printer's request funnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import io
import logging
import os
import re
import secrets
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn, Protocol, TypeVar

import aiohttp
import attrs
from aiohttp.payload import Payload

from ._http import (
    MAX_JSON_SIZE,
    TRANSPORT_ERRORS,
    ChunkFloodGuard,
    read_chunk,
    read_json,
    read_limited,
    shown_path,
)
from ._transport import as_timeout
from .errors import (
    ClientClosedError,
    CommunicationError,
    DownloadLimitError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
    UnexpectedResponseError,
    UploadLimitError,
    UploadSourceError,
)
from .retry import RetryPolicy

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

    from ._funnel import Funnel
    from .models import PrinterLimits

__all__ = [
    "DownloadStream",
    "Files",
    "FormValue",
    "LimitsSource",
    "ProgressCallback",
    "UploadResult",
    "UploadSource",
]

_LOGGER = logging.getLogger(__package__)
T = TypeVar("T")

#: Read size for upload sources and the batch size for download writes.
CHUNK_SIZE: Final = 256 * 1024
WRITE_BATCH: Final = 1024 * 1024
#: Progress is reported at least this often (and once at completion).
PROGRESS_STEP: Final = 1024 * 1024
#: An upload lets other tasks run at least once per this many bytes written.
FAIR_SHARE: Final = 256 * 1024
#: A resuming download gives up after this many consecutive attempts without new bytes.
MAX_STALLED_RESUMES: Final = 3
#: A download that must start again (the file changed under a resume) gives up after this many.
MAX_RESTARTS: Final = 3
#: Fresh names tried for a temporary file (or the old ``dest`` kept aside) before giving up.
NAME_TRIES: Final = 16

#: ``progress(bytes_done, total_or_None)``; may be a plain function or a coroutine function.
ProgressCallback = Callable[[int, int | None], Awaitable[None] | None]
UploadSource = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]
)
FormValue = str | int | float | bool

_CONTENT_RANGE_RE: Final = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


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


# ---------------------------------------------------------------------------- sources


class _Source:
    """An upload source: knows its size (when it can) and yields its bytes once per stream."""

    size: int | None = None
    replayable: bool = False
    filename: str | None = None
    description: str = "upload source"

    def stream(self) -> AsyncGenerator[bytes, None]:
        """The source's bytes, in chunks (once, unless ``replayable``)."""
        raise NotImplementedError


class _BytesSource(_Source):
    replayable = True

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.size = self._view.nbytes
        self.description = "bytes"

    async def stream(self) -> AsyncGenerator[bytes, None]:
        for start in range(0, self._view.nbytes, CHUNK_SIZE):
            yield bytes(self._view[start : start + CHUNK_SIZE])


class _PathSource(_Source):
    replayable = True

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.filename = path.name
        self.description = f"file {path.name!r}"

    async def stream(self) -> AsyncGenerator[bytes, None]:
        handle = await acquire_off_loop(_open_for_reading, self.path, release=_close)
        loop = asyncio.get_running_loop()
        # One read ahead: the next chunk is read from disk while this one is sent.
        pending = loop.run_in_executor(None, handle.read, CHUNK_SIZE)
        try:
            while chunk := await pending:
                pending = loop.run_in_executor(None, handle.read, CHUNK_SIZE)
                yield chunk
        finally:
            try:
                await settle(pending)  # never close a file while a thread reads it
            finally:
                await finish_off_loop(handle.close)


class _FileObjectSource(_Source):
    def __init__(self, handle: IO[bytes], size: int | None) -> None:
        self._handle = handle
        self.size = size
        name = getattr(handle, "name", None)
        self.filename = Path(name).name if isinstance(name, str) and name else None
        self.description = "file object"
        self._used = False

    async def stream(self) -> AsyncGenerator[bytes, None]:
        if self._used:
            raise UploadSourceError("a file object can be sent only once")
        self._used = True
        while chunk := await off_loop(self._handle.read, CHUNK_SIZE):
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise UploadSourceError("the file object must be opened in binary mode")
            yield bytes(chunk)


class _IterableSource(_Source):
    def __init__(self, iterable: AsyncIterable[bytes], size: int | None) -> None:
        self._iterable = iterable
        self.size = size
        self.description = "async iterable"
        self._used = False

    async def stream(self) -> AsyncGenerator[bytes, None]:
        if self._used:
            # aiohttp would send 0 bytes and the server would answer 200: silent data loss.
            raise UploadSourceError("an async iterable can be sent only once")
        self._used = True
        iterator = aiter(self._iterable)
        try:
            async for chunk in iterator:
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise UploadSourceError(
                        f"the async iterable yielded {type(chunk).__name__}, expected bytes"
                    )
                if chunk:
                    yield bytes(chunk)
        finally:
            # An upload that ends early (error, cancellation) closes an async generator
            # source at once, so its own finally blocks run now, not at loop shutdown.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _open_for_reading(path: Path) -> IO[bytes]:
    return path.open("rb")


def _close(handle: IO[bytes]) -> None:
    handle.close()


def _stat_upload_file(path: Path) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidArgumentError(f"upload source {str(path)!r} does not exist") from None
    except OSError as err:
        raise InvalidArgumentError(
            f"upload source {str(path)!r} cannot be read ({os.strerror(err.errno or 0)})"
        ) from None
    if not path.is_file():
        raise InvalidArgumentError(f"upload source {str(path)!r} is not a regular file")
    return st.st_size


def _remaining_size(handle: IO[bytes]) -> int | None:
    """Bytes left in a seekable regular file object, else None."""
    try:
        if not handle.seekable():
            return None
        position = handle.tell()
        end = handle.seek(0, io.SEEK_END)
        handle.seek(position)
    except (OSError, ValueError, AttributeError):
        return None
    return max(0, end - position)


async def open_source(source: object, *, size: int | None) -> _Source:
    """Classify ``source``; stat paths and file objects off the event loop."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InvalidArgumentError("size must be a non-negative integer")
    if isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        actual = await off_loop(_stat_upload_file, path)
        if size is not None and size != actual:
            raise InvalidArgumentError(f"size={size} but {path.name!r} has {actual} bytes")
        return _PathSource(path, actual)
    if isinstance(source, bytes | bytearray | memoryview):
        bytes_source = _BytesSource(source)
        if size is not None and size != bytes_source.size:
            raise InvalidArgumentError(f"size={size} but the bytes are {bytes_source.size} long")
        return bytes_source
    if isinstance(source, io.TextIOBase):
        raise InvalidArgumentError("upload source file object must be opened in binary mode")
    if hasattr(source, "read"):
        handle: IO[bytes] = source  # type: ignore[assignment]
        known = size if size is not None else await off_loop(_remaining_size, handle)
        return _FileObjectSource(handle, known)
    if isinstance(source, AsyncIterable):
        return _IterableSource(source, size)
    raise InvalidArgumentError(
        "upload source must be a path, bytes, a binary file object or an async iterable of "
        f"bytes, not {type(source).__name__}"
    )


class SourcePayload(Payload):
    """An aiohttp payload that streams a source with progress and a size guarantee.

    The declared size (``Content-Length``) is enforced: a source that yields fewer or more
    bytes aborts the request with :class:`UploadSourceError` instead of sending a
    truncated or overlong body. The failure is kept in :attr:`source_error` because aiohttp
    reports body-writing failures as connection errors; an exception from the caller's
    ``progress`` callback is kept in :attr:`callback_error` for the same reason.
    """

    def __init__(
        self,
        source: _Source,
        progress: Progress,
        *,
        content_type: str | None,
        filename: str | None,
    ) -> None:
        super().__init__(
            source, content_type=content_type or "application/octet-stream", filename=filename
        )
        self._source = source
        self._size = source.size
        self._progress = progress
        self.source_error: BaseException | None = None
        self.callback_error: Exception | None = None

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Streams cannot be decoded to text (aiohttp only asks for logging)."""
        return f"<{self._source.description}>"

    async def write(self, writer: AbstractStreamWriter) -> None:
        """Stream the source into ``writer``."""
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        """Stream the source, enforcing the declared size."""
        self._progress.restart()
        sent = unyielded = 0
        expected = self._size
        async with contextlib.aclosing(self._source.stream()) as chunks:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as err:  # noqa: BLE001 (any failure of the caller's source)
                    self._fail(err)
                sent += len(chunk)
                if expected is not None and sent > expected:
                    self._fail(
                        UploadSourceError(
                            f"the {self._source.description} grew during the upload "
                            f"(more than the {expected} bytes declared); upload aborted"
                        )
                    )
                # Errors from the writer are connection errors: they propagate as they are.
                await writer.write(chunk)
                await self._report(self._progress.advance(len(chunk)))
                unyielded += len(chunk)
                if unyielded >= FAIR_SHARE:
                    # A fast peer takes every write without making us wait, and an
                    # in-memory source never waits either: without this the upload
                    # would hold the event loop until the last byte.
                    unyielded = 0
                    await asyncio.sleep(0)
        if expected is not None and sent != expected:
            self._fail(
                UploadSourceError(
                    f"the {self._source.description} ended after {sent} of the {expected} "
                    "bytes declared; upload aborted"
                )
            )
        self._consumed = not self._source.replayable
        self._progress.total = sent
        await self._report(self._progress.finish())

    async def _report(self, report: Awaitable[None]) -> None:
        """Run a progress report; the caller's callback failing aborts the request."""
        try:
            await report
        except Exception as err:  # the caller's callback: re-raised as it is by upload()
            self.callback_error = err
            raise

    @property
    def failure(self) -> Exception | None:
        """What the caller's side (callback or source) raised, as the upload re-raises it."""
        if self.callback_error is not None:
            return self.callback_error
        if self.source_error is not None:
            return _source_failure(self.source_error)
        return None

    def _fail(self, err: Exception) -> NoReturn:
        """Remember that the source (not the connection) failed, and abort the request."""
        self.source_error = err
        raise err


#: How browsers and curl escape a multipart name (WHATWG HTML, "multipart/form-data"):
#: only these three; everything else, UTF-8 included, is sent as it is.
_FORM_NAME_ESCAPES: Final = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def _form_name(what: str, value: str) -> str:
    """A field or file name for ``Content-Disposition``, escaped the way browsers do.

    Printers take the quoted value as it is (Moonraker, OctoPrint: no percent-decoding),
    so a name is stored exactly as given; only ``"``, CR and LF, which would end the value
    or the header, become ``%22``, ``%0D``, ``%0A``.
    """
    if "\0" in value:
        raise InvalidArgumentError(f"{what} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} is not valid Unicode (a lone surrogate)") from None
    return value.translate(_FORM_NAME_ESCAPES)


def form_disposition(name: str, filename: str | None = None) -> str:
    """``form-data; name="..."[; filename="..."]`` with names sent as given (raw UTF-8).

    aiohttp's default (``quote_fields=True``) percent-encodes a file name, and printers
    store the encoded text: ``a b.gcode`` became ``a%20b.gcode`` on Moonraker.
    """
    value = f'form-data; name="{_form_name("field name", name)}"'
    if filename is not None:
        value += f'; filename="{_form_name("filename", filename)}"'
    return value


def _form_value(value: FormValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidArgumentError(f"form values must be str, int, float or bool, not {type(value)}")


def _upload_over_limit(size: int | None, body_size: int, limit: int) -> UploadLimitError:
    """The pre-check's error: it says nothing was sent and reports the file's own size."""
    if size is None or size == body_size:
        what = f"The file is {body_size} bytes"
    else:
        what = f"The file is {size} bytes ({body_size} with the upload form around it)"
    return UploadLimitError(
        f"{what}; the account's upload limit is {limit} bytes. Nothing was sent.",
        limit=limit,
        size=size if size is not None else body_size,
        client_side=True,
    )


def _raise_caller_failure(payloads: Iterable[SourcePayload]) -> None:
    """Raise what the caller's source or progress callback raised in a body sent, if any."""
    failed = next((p.failure for p in payloads if p.failure is not None), None)
    if failed is not None:
        raise failed from None


def _source_failure(err: BaseException) -> UploadSourceError:
    if isinstance(err, UploadSourceError):
        return err
    if isinstance(err, OSError):
        reason = os.strerror(err.errno) if err.errno else type(err).__name__
        return UploadSourceError(f"reading the upload source failed ({reason})")
    return UploadSourceError(f"the upload source failed ({type(err).__name__})")


# ---------------------------------------------------------------------------- downloads


class DownloadStream:
    """The body of a download as an async iterator of ``bytes`` chunks.

    Attributes:
        status: the HTTP status (200, or 206 for a range).
        headers: the response headers.
        total: the body size from ``Content-Length``, or None.
        received: bytes yielded so far.

    """

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        *,
        limit: int | None,
        progress: Progress,
        offset: int,
        method: str,
        path: str,
        funnel: Funnel,
    ) -> None:
        self._resp = resp
        self._funnel = funnel
        self._limit = limit
        self._progress = progress
        self._offset = offset
        self._where = (method, path)
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.total: int | None = resp.content_length
        self.received: int = 0
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
        self._flood = ChunkFloodGuard(f"the download of {method} {path}") if chunked else None

    def __aiter__(self) -> DownloadStream:
        return self

    def check_declared_size(self) -> None:
        """Raise :class:`DownloadLimitError` when ``Content-Length`` is over the limit."""
        if self._limit is not None and self.total is not None:
            size = self._offset + self.total
            if size > self._limit:
                raise DownloadLimitError(
                    f"The file is {size} bytes; the account's download limit is "
                    f"{self._limit} bytes. The download was not started.",
                    limit=self._limit,
                    size=size,
                    client_side=True,
                )

    async def __anext__(self) -> bytes:
        try:
            if self._flood is None:  # not chunked: everything buffered, in one piece
                chunk = await self._resp.content.readany()
            else:
                while True:  # skip empty HTTP chunks; EOF is (b"", False)
                    chunk, end_of_chunk = await read_chunk(self._resp.content)
                    self._flood.check(chunk, end_of_chunk=end_of_chunk)
                    if chunk or not end_of_chunk:
                        break
        except TRANSPORT_ERRORS as err:
            raise self._funnel.error_for(err, *self._where) from None
        if not chunk:
            if self._funnel.client_closed:  # close() cut it short: never a silent truncation
                raise ClientClosedError(f"{' '.join(self._where)}: the client was closed")
            await self._progress.finish()
            raise StopAsyncIteration
        self.received += len(chunk)
        if self._limit is not None and self._offset + self.received > self._limit:
            raise DownloadLimitError(
                f"The download passed the account's download limit ({self._limit} bytes); aborted",
                limit=self._limit,
                client_side=True,
            )
        if self._progress.active:  # skip the call per chunk when nobody listens
            await self._progress.advance(len(chunk))
        return chunk


class _FileSink:
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


def _create_temp(dest: Path) -> tuple[IO[bytes], str]:
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


def _finish(handle: IO[bytes]) -> None:
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


def _install(temp: str, dest: Path, decision: dict[str, str]) -> None:
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


async def _install_undoably(temp: str, dest: Path) -> None:
    """Move the finished download into place; a cancellation meanwhile leaves ``dest`` as it was.

    The rename runs in the executor and cannot be stopped, so a task cancelled while it
    runs tells the thread to undo it and waits for that before the cancellation goes on.
    Only a cancellation arriving after the thread has finished everything (the call's work
    was done) leaves the new ``dest`` in place.
    """
    decision: dict[str, str] = {}
    future = asyncio.get_running_loop().run_in_executor(None, _install, temp, dest, decision)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        if decision.setdefault("decision", "undo") == "keep":
            _LOGGER.debug("download_to cancelled after its file was in place")
        await settle(future)
        raise


def _discard(handle: IO[bytes], temp: str) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def _resume_point(stream: DownloadStream) -> tuple[int, int | None] | None:
    """For a 206 answer: (first byte, total size). None when the range is unusable."""
    match = _CONTENT_RANGE_RE.match(stream.headers.get("Content-Range", ""))
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _strong_date(last_modified: str, date: str | None) -> bool:
    """RFC 9110 8.8.2.2: a ``Last-Modified`` is strong when ``Date`` is a second or more later."""
    if date is None:
        return False
    try:
        modified = email.utils.parsedate_to_datetime(last_modified)
        sent = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return False
    try:
        return (sent - modified).total_seconds() >= 1
    except TypeError:  # one naive, one aware: not comparable
        return False


class _Restart(Exception):  # noqa: N818 (a signal inside download_to, never raised out of it)
    """A resume answered with another version of the file: start again from byte 0."""


@attrs.frozen(kw_only=True)
class _FirstAnswer:
    """What the answer that started a download says about resuming it."""

    #: The server takes ``Range`` (``Accept-Ranges: bytes``).
    ranges: bool
    #: The file's whole length, when the answer said it.
    length: int | None
    #: Its ``ETag`` (strong or weak), to compare with a resume's.
    etag: str | None
    #: What goes in ``If-Range``: a strong ``ETag``, or a strong ``Last-Modified`` when there
    #: is no ``ETag`` at all (RFC 9110 13.1.5: never a weak one). None: nothing.
    validator: str | None

    @classmethod
    def of(cls, stream: DownloadStream) -> _FirstAnswer:
        headers = stream.headers
        etag = headers.get("ETag")
        validator: str | None = None
        if etag is not None:
            validator = None if etag.startswith("W/") else etag
        else:
            modified = headers.get("Last-Modified")
            if modified is not None and _strong_date(modified, headers.get("Date")):
                validator = modified
        length = stream.total
        if stream.status == 206:
            point = _resume_point(stream)
            length = point[1] if point is not None else None
        return cls(
            ranges=headers.get("Accept-Ranges", "").lower() == "bytes",
            length=length,
            etag=etag,
            validator=validator,
        )

    @property
    def resumable(self) -> bool:
        """A resume can be checked: the length or a strong validator is known."""
        return self.ranges and (self.length is not None or self.validator is not None)

    def check(self, stream: DownloadStream, received: int) -> None:
        """Accept the 206 answer to a resume from byte ``received``, or say why not.

        Raises:
            UnexpectedResponseError: the range does not start where asked.
            _Restart: the answer is of another version of the file (another total length
                or ``ETag``), or nothing shows it is the same one.

        """
        point = _resume_point(stream)
        if point is None or point[0] != received:
            raise UnexpectedResponseError("the printer answered a resume with the wrong range")
        if self.length is not None:
            if point[1] != self.length:
                raise _Restart("the file's length changed")
        elif self.validator is None:
            raise _Restart("nothing shows the file is unchanged")
        etag = stream.headers.get("ETag")
        if self.etag is not None and etag is not None and etag != self.etag:
            raise _Restart("the file's ETag changed")


# ---------------------------------------------------------------------------- the feature


class LimitsSource(Protocol):
    """Where the transfer pre-check gets the account limits (the App API feature)."""

    async def precheck_limits(self) -> PrinterLimits | None:
        """The limits to check a transfer against, or None to skip the pre-check."""
        ...


@attrs.frozen(kw_only=True)
class UploadResult:
    """What the printer answered to an upload.

    Attributes:
        status: the HTTP status (e.g. 201 from OctoPrint and Moonraker).
        headers: the response headers.
        body: the answer's bytes (at most 32 MiB).
        data: the decoded JSON when the answer is JSON (``Content-Type``
            ``application/json``, ``text/json`` or ``+json``), else None.

    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    data: Any = None

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


def _is_json(content_type: str) -> bool:
    # The OctoEverywhere plugin answers its commands (files/upload included) as text/json.
    return content_type in ("application/json", "text/json") or content_type.endswith("+json")


#: Called with an opened download before any byte is read or written; raises to refuse it.
AnswerCheck = Callable[["DownloadStream"], Awaitable[None]]


class Files:
    """File uploads and downloads: ``printer.files``.

    Bytes are streamed in 256 KiB chunks, never held whole in memory; file ``stat``,
    ``open``, ``read``, ``write``, ``fsync`` and ``rename`` run in the executor. Before a
    byte is sent, a transfer of known size is compared with the account's limits (from the
    App API, fetched once); the relay's 607/608 map to the same errors.
    """

    __slots__ = ("_funnel", "_limits")

    def __init__(self, funnel: Funnel, limits: LimitsSource) -> None:
        self._funnel = funnel
        self._limits = limits

    def __repr__(self) -> str:
        return f"<Files of {self._funnel!r}>"

    async def upload(
        self,
        path: str,
        source: UploadSource,
        *,
        filename: str | None = None,
        field: str = "file",
        form: Mapping[str, FormValue] | None = None,
        raw: bool = False,
        method: str | None = None,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        content_type: str | None = None,
        retry: bool = False,
        timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> UploadResult:
        """Stream a file to the printer (never held whole in memory; file I/O off the loop).

        Args:
            path: the printer's upload endpoint, e.g. ``/api/files/local`` (OctoPrint),
                ``/server/files/upload`` (Moonraker).
            source: a file path (``str``/``Path``), ``bytes``, a binary file object, or an
                async iterable of ``bytes`` (an async generator is closed when the upload
                ends, early or not, so its ``finally`` blocks run at once).
            filename: the name sent in the form; default: the path's or file object's name
                (required for bytes and iterables in a multipart upload). Sent as given,
                the way browsers and curl send it: raw UTF-8, with only ``"``, CR and LF
                escaped as ``%22``, ``%0D``, ``%0A``; the printer stores that name.
            field: the multipart field that carries the file.
            form: extra multipart fields (``{"select": True, "path": "folder"}``); booleans
                are sent as ``true``/``false``; field names are sent like ``filename``.
            raw: send the bytes as the request body instead of a multipart form.
            method: default ``POST`` (multipart) or ``PUT`` (raw).
            progress: ``progress(bytes_done, total_or_None)``, sync or async: at least every
                MiB, monotonic, and once at completion.
            size: the byte count of an iterable source, when known (enables the limit
                pre-check and ``Content-Length``); checked against what the source yields.
            content_type: the file part's (or raw body's) content type.
            retry: allow the retry policy to resend the upload; only for bytes or a path
                (a stream can be sent once: aiohttp would send 0 bytes and the server would
                answer 200).
            timeout: default: the client's stream timeout (no total limit).

        Returns:
            The printer's answer: status, headers, body and, for a JSON answer, ``data``.

        Raises:
            UploadLimitError: the body is over the account's upload limit: checked before
                any byte is sent when the size is known (``err.client_side`` is True and
                ``err.size`` is the file's size), 608 from the relay otherwise.
            UploadSourceError: the source failed or changed size while being sent.
            InvalidArgumentError: a missing file, bad arguments (nothing is sent).

        """
        if raw and form:
            raise InvalidArgumentError("form fields need a multipart upload (raw=False)")
        if not raw and (not isinstance(field, str) or not field):
            raise InvalidArgumentError("field must be a non-empty string")
        form_items = [(str(k), _form_value(v)) for k, v in (form or {}).items()]
        reporter = Progress(progress, None)
        src = await open_source(source, size=size)
        if retry and not src.replayable:
            raise InvalidArgumentError(
                "retry=True needs a source that can be sent again (bytes or a file path); "
                f"a {src.description} can be sent only once"
            )
        name = filename or src.filename
        if not raw and not name:
            raise InvalidArgumentError("filename is required for a multipart upload of this source")
        if not raw:
            file_disposition = form_disposition(field, name)
            field_dispositions = [(form_disposition(key), value) for key, value in form_items]
        reporter.total = src.size

        payloads: list[SourcePayload] = []

        def make_body() -> Payload:
            payload = SourcePayload(src, reporter, content_type=content_type, filename=name)
            payloads.append(payload)
            if raw:
                return payload
            writer = aiohttp.MultipartWriter("form-data")
            for disposition, value in field_dispositions:
                writer.append(value, {"Content-Disposition": disposition})
            payload.headers["Content-Disposition"] = file_disposition
            writer.append_payload(payload)
            return writer

        first = make_body()
        body_size = first.size
        if body_size is not None:
            limits = await self._limits.precheck_limits()
            limit = limits.max_upload_bytes if limits is not None else None
            if limit is not None and limit > 0 and body_size > limit:
                raise _upload_over_limit(src.size, body_size, limit)

        bodies = iter([first])

        def next_body() -> Payload:
            # The first attempt sends the body built above; a retry builds a fresh one
            # (only reachable for replayable sources), unless the caller's side failed:
            # that is no network error to retry, it ends the upload as it is.
            _raise_caller_failure(payloads)
            return next(bodies, None) or make_body()

        http_method = (method or ("PUT" if raw else "POST")).upper()
        call = self._funnel.call(
            http_method,
            path,
            data=next_body if retry else first,
            timeout=timeout,
            stream=True,
            idempotent=retry,
            retry=None if retry else RetryPolicy.never(),
        )
        try:
            async with self._funnel.send(call) as resp:
                if _is_json(resp.content_type):
                    data = await read_json(resp, http_method)
                    body = b""
                else:
                    data = None
                    body = await read_limited(resp, MAX_JSON_SIZE, what="the upload's answer")
                return UploadResult(status=resp.status, headers=resp.headers, body=body, data=data)
        except OctoEverywhereError:
            _raise_caller_failure(payloads)
            raise

    def download(
        self,
        path: str,
        *,
        progress: ProgressCallback | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        check_answer: AnswerCheck | None = None,
    ) -> AbstractAsyncContextManager[DownloadStream]:
        """Stream a file from the printer: ``async with printer.files.download(p) as chunks``.

        ``chunks`` is an async iterator of ``bytes`` (also ``.total``, ``.received``,
        ``.headers``). The connection is released when the block exits, early or not.
        ``check_answer`` is awaited with the opened stream before it is handed out: raise
        there to refuse an answer that is not the file (the plugin API uses it).

        Raises:
            DownloadLimitError: ``Content-Length`` or the streamed count passes the
                account's download limit (607 from the relay maps too).

        """
        return self._open_download(
            path,
            Progress(progress, None),
            params=params,
            headers=headers,
            timeout=timeout,
            check_answer=check_answer,
        )

    @contextlib.asynccontextmanager
    async def _open_download(
        self,
        path: str,
        reporter: Progress,
        *,
        params: Any,
        headers: Mapping[str, str] | None,
        timeout: float | aiohttp.ClientTimeout | None,
        offset: int = 0,
        check_answer: AnswerCheck | None = None,
    ) -> AsyncIterator[DownloadStream]:
        """The body of ``path`` from byte ``offset`` (a ``Range`` set by the caller)."""
        limits = await self._limits.precheck_limits()
        limit = limits.max_download_bytes if limits is not None else None
        if limit is not None and limit <= 0:
            limit = None
        # Identity encoding: byte counts, limits and ranges then refer to the file's bytes.
        request_headers = {"Accept-Encoding": "identity", **(headers or {})}
        call = self._funnel.call(
            "GET", path, params=params, headers=request_headers, timeout=timeout, stream=True
        )
        async with self._funnel.send(call) as resp:
            if reporter.total is None and resp.content_length is not None:
                reporter.total = offset + resp.content_length
            stream = DownloadStream(
                resp,
                limit=limit,
                progress=reporter,
                offset=offset,
                method="GET",
                path=resp.url.path,
                funnel=self._funnel,
            )
            stream.check_declared_size()
            if check_answer is not None:
                await check_answer(stream)
            yield stream

    async def download_to(
        self,
        path: str,
        dest: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
        params: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        check_answer: AnswerCheck | None = None,
    ) -> Path:
        """Download to ``dest`` atomically; return ``dest`` as a ``Path``.

        Bytes go to a temporary file beside ``dest`` that is fsynced and renamed into place
        only on success: after any failure or cancellation ``dest`` is untouched and no
        temporary file remains. With ``resume`` (default), a connection that drops
        mid-body is resumed with ``Range``/``If-Range`` when the server supports ranges;
        the result is byte-identical: a resume answered with another version of the file
        (another length or ``ETag``) starts again from byte 0. ``check_answer`` is as for
        :meth:`download`, awaited on every answer before a byte of it is written.

        ``timeout`` (seconds, or a ``ClientTimeout`` with a ``total``) is the whole call's
        deadline: every attempt, resume and restart and the final rename included. It ends
        in :class:`oe_async.RequestTimeoutError`. Without a total (the client's stream
        timeout, by default) only each read is bounded. The file follows the process umask
        (mode 0666 less the umask), like any new file.
        """
        target = Path(os.fspath(dest))
        limits = as_timeout(timeout, self._funnel.stream_timeout)
        total = limits.total
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        timer = asyncio.timeout_at(deadline)
        try:
            async with timer:
                return await self._download_to(
                    path,
                    target,
                    Progress(progress, None),
                    resume=resume,
                    params=params,
                    timeout=limits,
                    deadline=deadline,
                    check_answer=check_answer,
                )
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._past_deadline(path, total) from None

    @staticmethod
    def _past_deadline(path: str, total: float | None) -> RequestTimeoutError:
        return RequestTimeoutError(
            detail=f"GET {shown_path(path)}: download_to did not finish within its "
            f"{total:g} s deadline"
        )

    async def _download_to(
        self,
        path: str,
        target: Path,
        reporter: Progress,
        *,
        resume: bool,
        params: Any,
        timeout: aiohttp.ClientTimeout,
        deadline: float | None,
        check_answer: AnswerCheck | None,
    ) -> Path:
        """:meth:`download_to` inside its deadline."""
        handle, temp = await acquire_off_loop(
            _create_temp, target, release=lambda created: _discard(*created)
        )
        state = _Download(sink=_FileSink(handle), reporter=reporter)
        try:
            while not await self._download_attempt(
                path,
                state,
                resume=resume,
                params=params,
                timeout=timeout,
                deadline=deadline,
                check_answer=check_answer,
            ):
                pass
            await state.sink.flush()
            await off_loop_to_completion(_finish, handle)  # never close under a thread's fsync
            await _install_undoably(temp, target)
        except BaseException:
            # To its end even if cancelled again meanwhile: no .part file, no open handle.
            await run_to_completion(_abandon(state.sink, handle, temp))
            raise
        return target

    async def _download_attempt(
        self,
        path: str,
        state: _Download,
        *,
        resume: bool,
        params: Any,
        timeout: aiohttp.ClientTimeout,
        deadline: float | None,
        check_answer: AnswerCheck | None,
    ) -> bool:
        """One request of a download_to: True when the file is complete, False to go on."""
        loop = asyncio.get_running_loop()
        before = state.received
        attempt = timeout
        if deadline is not None:  # what is left of the deadline, for every attempt
            attempt = attrs.evolve(timeout, total=max(deadline - loop.time(), 0.001))
        try:
            async with self._open_download(
                path,
                state.reporter,
                params=params,
                headers=state.request_headers(),
                timeout=attempt,
                offset=state.received,
                check_answer=check_answer,
            ) as stream:
                if not state.received:
                    state.first = _FirstAnswer.of(stream)
                elif not await state.resumed_by(stream):
                    before = 0  # started again from this answer
                state.reporter.restart(state.received)
                async for chunk in stream:
                    await state.sink.write(chunk)
                    state.received += len(chunk)
        except _Restart as why:
            await state.restart(why)
            return False
        except CommunicationError:
            if deadline is not None and loop.time() >= deadline:
                raise self._past_deadline(path, timeout.total) from None
            state.stalls = 0 if state.received > before else state.stalls + 1
            if (
                not (resume and state.first is not None and state.first.resumable)
                or state.stalls >= MAX_STALLED_RESUMES
            ):
                raise
            await state.sink.flush()
            _LOGGER.debug("download interrupted after %d bytes; resuming", state.received)
            return False
        return await _complete_download(path, state, before=before, resume=resume)


async def _complete_download(path: str, state: _Download, *, before: int, resume: bool) -> bool:
    """True when the bytes kept are the whole file; False to ask for the rest.

    A 206 may cover less than the rest of the file (RFC 9110 allows a server to send
    part of what was asked): the next request asks for what is still missing. Never
    is a file shorter (or longer) than the length the printer gave installed.
    """
    first = state.first
    length = None if first is None else first.length
    if first is None or length is None or state.received == length:
        return True
    if state.received > length:
        raise UnexpectedResponseError(
            f"GET {shown_path(path)}: the printer sent {state.received} bytes of a "
            f"{length}-byte file"
        )
    state.stalls = 0 if state.received > before else state.stalls + 1
    if not (resume and first.resumable) or state.stalls >= MAX_STALLED_RESUMES:
        raise CommunicationError(
            f"GET {shown_path(path)}: the download ended after {state.received} of {length} bytes"
        )
    await state.sink.flush()
    _LOGGER.debug("the answer ended at byte %d of %d; asking for the rest", state.received, length)
    return False


@attrs.define(kw_only=True)
class _Download:
    """Where one download_to stands: its file, bytes kept, the first answer, attempts."""

    sink: _FileSink
    reporter: Progress
    received: int = 0
    first: _FirstAnswer | None = None
    stalls: int = 0
    restarts: int = 0

    def request_headers(self) -> dict[str, str]:
        """``Range`` (and ``If-Range``) from the bytes kept; none for the first request."""
        if not self.received or self.first is None:
            return {}
        headers = {"Range": f"bytes={self.received}-"}
        if self.first.validator:
            headers["If-Range"] = self.first.validator
        return headers

    async def resumed_by(self, stream: DownloadStream) -> bool:
        """Take the answer to a resume: True when it continues the file (checked 206).

        A 200 (the server ignored the range, or ``If-Range`` did not match) starts the file
        again from its first byte; it becomes the first answer.

        Raises:
            UnexpectedResponseError: a 206 for another range.
            _Restart: a 206 of another version of the file.

        """
        if stream.status == 206 and self.first is not None:
            self.first.check(stream, self.received)
            return True
        # The status only: headers may carry cookies.
        _LOGGER.debug("download restarts from byte 0 (%d)", stream.status)
        await self.sink.truncate()
        self.received = 0
        self.reporter.restart()
        if stream.total is not None:
            self.reporter.total = stream.total
        self.first = _FirstAnswer.of(stream)
        return False

    async def restart(self, why: _Restart) -> None:
        """Drop what was kept and start again from byte 0 (a bounded number of times)."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise UnexpectedResponseError(
                "the file kept changing while it was downloaded"
            ) from None
        _LOGGER.debug("download restarts from byte 0: %s", why)
        await self.sink.truncate()
        self.received = 0
        self.first = None
        self.reporter.restart()
        self.reporter.total = None


async def _abandon(sink: _FileSink, handle: IO[bytes], temp: str) -> None:
    """Drop a download's buffered data, close its file and delete it."""
    await sink.discard()
    await off_loop(_discard, handle, temp)
