"""Uploads: the sources a file can come from, the streaming body, the multipart form.

A source (a path, bytes, a binary file object, an async iterable) is classified and sized
off the event loop (:func:`open_source`); :class:`SourcePayload` streams it into aiohttp with
progress, enforcing the declared size; :func:`form_disposition` names the form's parts the
way browsers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import attrs
from aiohttp.payload import Payload

from oe_async.errors import InvalidArgumentError, UploadLimitError, UploadSourceError

from ._offload import acquire_off_loop, finish_off_loop, off_loop, settle
from ._progress import Progress

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

#: Read size for upload sources (and the batch size unit of download writes).
CHUNK_SIZE: Final = 256 * 1024
#: An upload lets other tasks run at least once per this many bytes written.
FAIR_SHARE: Final = 256 * 1024

UploadSource = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]
)
FormValue = str | int | float | bool


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


class _OneShotSource(_Source):
    """A source read as it is sent (a file object, an async iterable): it is sent once."""

    _used = False

    def _claim(self, what: str) -> None:
        if self._used:
            # aiohttp would send 0 bytes and the server would answer 200: silent data loss.
            raise UploadSourceError(f"{what} can be sent only once")
        self._used = True


class _FileObjectSource(_OneShotSource):
    def __init__(self, handle: IO[bytes], size: int | None) -> None:
        self._handle = handle
        self.size = size
        name = getattr(handle, "name", None)
        self.filename = Path(name).name if isinstance(name, str) and name else None
        self.description = "file object"

    async def stream(self) -> AsyncGenerator[bytes, None]:
        self._claim("a file object")
        while chunk := await off_loop(self._handle.read, CHUNK_SIZE):
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise UploadSourceError("the file object must be opened in binary mode")
            yield bytes(chunk)


class _IterableSource(_OneShotSource):
    def __init__(self, iterable: AsyncIterable[bytes], size: int | None) -> None:
        self._iterable = iterable
        self.size = size
        self.description = "async iterable"

    async def stream(self) -> AsyncGenerator[bytes, None]:
        self._claim("an async iterable")
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
            return source_failure(self.source_error)
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


def form_value(value: FormValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidArgumentError(f"form values must be str, int, float or bool, not {type(value)}")


def upload_over_limit(size: int | None, body_size: int, limit: int) -> UploadLimitError:
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


def raise_caller_failure(payloads: Iterable[SourcePayload]) -> None:
    """Raise what the caller's source or progress callback raised in a body sent, if any."""
    failed = next((p.failure for p in payloads if p.failure is not None), None)
    if failed is not None:
        raise failed from None


def source_failure(err: BaseException) -> UploadSourceError:
    if isinstance(err, UploadSourceError):
        return err
    if isinstance(err, OSError):
        reason = os.strerror(err.errno) if err.errno else type(err).__name__
        return UploadSourceError(f"reading the upload source failed ({reason})")
    return UploadSourceError(f"the upload source failed ({type(err).__name__})")


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


def is_json(content_type: str) -> bool:
    # The OctoEverywhere plugin answers its commands (files/upload included) as text/json.
    return content_type in ("application/json", "text/json") or content_type.endswith("+json")
