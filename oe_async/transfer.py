"""Streaming uploads and downloads: progress, account limits, resume, no blocking I/O.

Bytes are streamed in chunks, never held whole in memory. Every file operation (stat,
open, read, write, fsync, rename, unlink) runs in the default executor, never on the event
loop. Everything goes through the printer's request funnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import os
import re
import tempfile
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
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
)
from .errors import (
    ClientClosedError,
    CommunicationError,
    DownloadLimitError,
    InvalidArgumentError,
    OctoEverywhereError,
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
        with contextlib.suppress(Exception):
            await finish_off_loop(release, await future)
        raise


async def settle(future: asyncio.Future[Any]) -> None:
    """Wait for an executor future to finish, even if this task is cancelled meanwhile.

    The future's own error is ignored (the caller is cleaning up); a cancellation of the
    caller is re-raised once the future is done.
    """
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future  # quick work already under way: let it finish, then cancel
        raise
    except Exception:  # noqa: BLE001, S110 (clean-up path: the result does not matter)
        pass


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
    reports body-writing failures as connection errors.
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
                await self._progress.advance(len(chunk))
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
        await self._progress.finish()

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


def _create_temp(dest: Path) -> tuple[IO[bytes], str]:
    """Open a new temporary file beside ``dest`` (same file system, so rename is atomic)."""
    parent = dest.parent
    if dest.is_dir():
        raise InvalidArgumentError(f"destination {str(dest)!r} is a directory")
    if not parent.is_dir():
        raise InvalidArgumentError(f"destination folder {str(parent)!r} does not exist")
    fd, temp = tempfile.mkstemp(dir=parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        return os.fdopen(fd, "wb"), temp
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise


def _finish(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _install(temp: str, dest: Path, decision: dict[str, str]) -> None:
    """Rename ``temp`` onto ``dest`` in a worker thread, undoably until the loop decides.

    The old ``dest`` is kept as a hard link (moved aside where the file system has none)
    until the thread and the event loop agree: ``decision.setdefault`` is atomic, so the
    first of "keep" (this thread, rename done) and "undo" (the loop, its task cancelled
    meanwhile) wins. On "undo" the old file goes back (or the new one is removed).
    """
    backup = temp + ".old"
    moved = False
    try:
        os.link(dest, backup, follow_symlinks=False)
        had_old = True
    except FileNotFoundError:
        had_old = False
    except OSError:  # no hard links here (FAT, some network shares): move it aside
        try:
            os.replace(dest, backup)
            had_old = moved = True
        except FileNotFoundError:
            had_old = False
    try:
        os.replace(temp, dest)
    except BaseException:
        if moved:
            os.replace(backup, dest)
        elif had_old:
            os.unlink(backup)
        raise
    if decision.setdefault("decision", "keep") == "undo":
        if had_old:
            os.replace(backup, dest)
        else:
            os.unlink(dest)
    elif had_old:
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
            # (only reachable for replayable sources).
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
            failed = next((p.source_error for p in reversed(payloads) if p.source_error), None)
            if failed is not None:
                raise _source_failure(failed) from None
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
        the result is byte-identical. ``check_answer`` is as for :meth:`download`, awaited
        on every answer before a byte of it is written.
        """
        target = Path(os.fspath(dest))
        reporter = Progress(progress, None)
        handle, temp = await acquire_off_loop(
            _create_temp, target, release=lambda created: _discard(*created)
        )
        sink = _FileSink(handle)
        received = 0
        validator: str | None = None
        ranges = False
        stalls = 0
        try:
            while True:
                headers: dict[str, str] = {}
                if received:
                    headers["Range"] = f"bytes={received}-"
                    if validator:
                        headers["If-Range"] = validator
                before = received
                try:
                    async with self._open_download(
                        path,
                        reporter,
                        params=params,
                        headers=headers,
                        timeout=timeout,
                        offset=received,
                        check_answer=check_answer,
                    ) as stream:
                        if received and stream.status == 206:
                            point = _resume_point(stream)
                            if point is None or point[0] != received:
                                raise UnexpectedResponseError(
                                    "the printer answered a resume with the wrong range"
                                )
                        elif received:
                            # The server ignored the range or the file changed: start again.
                            # The status only: headers may carry cookies.
                            _LOGGER.debug("download restarts from byte 0 (%d)", stream.status)
                            await sink.truncate()
                            received = before = 0
                            reporter.restart()
                            if stream.total is not None:
                                reporter.total = stream.total
                        if not received:
                            ranges = stream.headers.get("Accept-Ranges", "").lower() == "bytes"
                            validator = stream.headers.get("ETag") or stream.headers.get(
                                "Last-Modified"
                            )
                        reporter.restart(received)
                        async for chunk in stream:
                            await sink.write(chunk)
                            received += len(chunk)
                    break
                except CommunicationError:
                    stalls = 0 if received > before else stalls + 1
                    if not (resume and ranges) or stalls >= MAX_STALLED_RESUMES:
                        raise
                    await sink.flush()
                    _LOGGER.debug("download interrupted after %d bytes; resuming", received)
            await sink.flush()
            await off_loop_to_completion(_finish, handle)  # never close under a thread's fsync
            await _install_undoably(temp, target)
        except BaseException:
            await sink.discard()
            await finish_off_loop(_discard, handle, temp)
            raise
        return target
