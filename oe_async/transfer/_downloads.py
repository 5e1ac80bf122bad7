"""Downloads: the streamed body, and what a resume needs to know to stay byte-identical.

:class:`DownloadStream` is a download's body as an async iterator, with the account's
download limit and progress; :class:`FirstAnswer` and :class:`DownloadState` decide whether a
``Range`` resume continues the same file (RFC 9110 ``If-Range``, ``Content-Range``) or the
download must start again.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import attrs

from oe_async._http import TRANSPORT_ERRORS, ChunkFloodGuard, read_chunk, shown_path
from oe_async.errors import (
    ClientClosedError,
    CommunicationError,
    DownloadLimitError,
    UnexpectedResponseError,
)

from ._progress import Progress
from ._sinks import FileSink

if TYPE_CHECKING:
    from oe_async._funnel import Funnel

_LOGGER = logging.getLogger("oe_async")

#: A resuming download gives up after this many consecutive attempts without new bytes.
MAX_STALLED_RESUMES: Final = 3
#: A download that must start again (the file changed under a resume) gives up after this many.
MAX_RESTARTS: Final = 3

_CONTENT_RANGE_RE: Final = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


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
            if self._funnel.transport.closed:  # close() cut it short: never a silent truncation
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


class Restart(Exception):  # noqa: N818 (a signal inside download_to, never raised out of it)
    """A resume answered with another version of the file: start again from byte 0."""


@attrs.frozen(kw_only=True)
class FirstAnswer:
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
    def of(cls, stream: DownloadStream) -> FirstAnswer:
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
            Restart: the answer is of another version of the file (another total length
                or ``ETag``), or nothing shows it is the same one.

        """
        point = _resume_point(stream)
        if point is None or point[0] != received:
            raise UnexpectedResponseError("the printer answered a resume with the wrong range")
        if self.length is not None:
            if point[1] != self.length:
                raise Restart("the file's length changed")
        elif self.validator is None:
            raise Restart("nothing shows the file is unchanged")
        etag = stream.headers.get("ETag")
        if self.etag is not None and etag is not None and etag != self.etag:
            raise Restart("the file's ETag changed")


#: Called with an opened download before any byte is read or written; raises to refuse it.
AnswerCheck = Callable[[DownloadStream], Awaitable[None]]


@attrs.frozen(kw_only=True)
class DownloadJob:
    """What one download_to asks for: the same on every attempt, resume and restart."""

    path: str
    resume: bool
    params: Any
    #: The call's timeout: the per-read bounds, and its ``total`` for the whole call.
    timeout: aiohttp.ClientTimeout
    #: When the whole call must be done (the loop's clock), or None without a total.
    deadline: float | None
    check_answer: AnswerCheck | None

    @classmethod
    def starting_now(
        cls,
        path: str,
        timeout: aiohttp.ClientTimeout,
        *,
        resume: bool,
        params: Any,
        check_answer: AnswerCheck | None,
    ) -> DownloadJob:
        """The job of a download_to that starts now: its deadline is ``timeout.total`` away."""
        total = timeout.total
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        return cls(
            path=path,
            resume=resume,
            params=params,
            timeout=timeout,
            deadline=deadline,
            check_answer=check_answer,
        )

    def attempt_timeout(self, now: float) -> aiohttp.ClientTimeout:
        """An attempt's timeout: the per-read bounds, and what is left of the deadline."""
        if self.deadline is None:
            return self.timeout
        return attrs.evolve(self.timeout, total=max(self.deadline - now, 0.001))

    def expired(self, now: float) -> bool:
        """True once the whole call's deadline has passed."""
        return self.deadline is not None and now >= self.deadline


@attrs.define(kw_only=True)
class DownloadState:
    """Where one download_to stands: its file, bytes kept, the first answer, attempts."""

    sink: FileSink
    reporter: Progress
    received: int = 0
    first: FirstAnswer | None = None
    stalls: int = 0
    restarts: int = 0

    async def complete(self, path: str, *, before: int, resume: bool) -> bool:
        """After an answer ended cleanly: True when the bytes kept are the whole file.

        False asks for the rest: a 206 may cover less than the rest of the file (RFC 9110
        lets a server send part of what was asked). Never is a file shorter (or longer)
        than the length the printer gave installed: without a resume, or after
        :data:`MAX_STALLED_RESUMES` answers that brought nothing, it fails.

        Raises:
            CommunicationError: the rest cannot be had.
            UnexpectedResponseError: more bytes came than the file's length.

        """
        first = self.first
        length = None if first is None else first.length
        if first is None or length is None or self.received == length:
            return True
        if self.received > length:
            raise UnexpectedResponseError(
                f"GET {shown_path(path)}: the printer sent {self.received} bytes of a "
                f"{length}-byte file"
            )
        self.stalls = 0 if self.received > before else self.stalls + 1
        if not (resume and first.resumable) or self.stalls >= MAX_STALLED_RESUMES:
            raise CommunicationError(
                f"GET {shown_path(path)}: the download ended after {self.received} of "
                f"{length} bytes"
            )
        await self.sink.flush()
        _LOGGER.debug(
            "the answer ended at byte %d of %d; asking for the rest", self.received, length
        )
        return False

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
            Restart: a 206 of another version of the file.

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
        self.first = FirstAnswer.of(stream)
        return False

    async def restart(self, why: Restart) -> None:
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
