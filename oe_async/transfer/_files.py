"""``printer.files``: uploads and downloads through the printer's request funnel.

:class:`Files` is the feature: the account's limits checked before a byte is sent, the
upload's form and retries, a download's body, and ``download_to``'s attempts, resumes and
deadline. What it is made of lives beside it: upload sources and the streaming body
(``_uploads``), the download stream and the resume checks (``_downloads``), the file
written off the loop and installed atomically (``_sinks``), progress (``_progress``) and
the executor helpers (``_offload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp.payload import Payload

from oe_async._funnel import Feature
from oe_async._http import MAX_JSON_SIZE, read_json, read_limited, shown_path
from oe_async._transport import as_timeout
from oe_async.errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
)
from oe_async.retry import RetryPolicy

from ._downloads import (
    MAX_STALLED_RESUMES,
    AnswerCheck,
    DownloadJob,
    DownloadState,
    DownloadStream,
    FirstAnswer,
    Restart,
)
from ._offload import acquire_off_loop, off_loop_to_completion, run_to_completion
from ._progress import Progress, ProgressCallback
from ._sinks import FileSink, abandon, create_temp, discard, finish, install_undoably
from ._uploads import (
    FormValue,
    SourcePayload,
    UploadResult,
    UploadSource,
    form_disposition,
    form_value,
    is_json,
    open_source,
    raise_caller_failure,
    upload_over_limit,
)

if TYPE_CHECKING:
    from oe_async._funnel import Funnel
    from oe_async.models import PrinterLimits

_LOGGER = logging.getLogger("oe_async")


class LimitsSource(Protocol):
    """Where the transfer pre-check gets the account limits (the App API feature)."""

    async def precheck_limits(self) -> PrinterLimits | None:
        """The limits to check a transfer against, or None to skip the pre-check."""
        ...


class Files(Feature):
    """File uploads and downloads: ``printer.files``.

    Bytes are streamed in 256 KiB chunks, never held whole in memory; file ``stat``,
    ``open``, ``read``, ``write``, ``fsync`` and ``rename`` run in the executor. Before a
    byte is sent, a transfer of known size is compared with the account's limits (from the
    App API, fetched once); the relay's 607/608 map to the same errors.
    """

    __slots__ = ("_limits",)

    def __init__(self, funnel: Funnel, limits: LimitsSource) -> None:
        super().__init__(funnel)
        self._limits = limits

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
        form_items = [(str(k), form_value(v)) for k, v in (form or {}).items()]
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
                raise upload_over_limit(src.size, body_size, limit)

        bodies = iter([first])

        def next_body() -> Payload:
            # The first attempt sends the body built above; a retry builds a fresh one
            # (only reachable for replayable sources), unless the caller's side failed:
            # that is no network error to retry, it ends the upload as it is.
            raise_caller_failure(payloads)
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
                if is_json(resp.content_type):
                    data = await read_json(resp, http_method)
                    body = b""
                else:
                    data = None
                    body = await read_limited(resp, MAX_JSON_SIZE, what="the upload's answer")
                return UploadResult(status=resp.status, headers=resp.headers, body=body, data=data)
        except OctoEverywhereError:
            raise_caller_failure(payloads)
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
        job = DownloadJob.starting_now(
            path,
            as_timeout(timeout, self._funnel.transport.stream_timeout),
            resume=resume,
            params=params,
            check_answer=check_answer,
        )
        timer = asyncio.timeout_at(job.deadline)
        try:
            async with timer:
                return await self._download_to(job, target, Progress(progress, None))
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._past_deadline(job) from None

    @staticmethod
    def _past_deadline(job: DownloadJob) -> RequestTimeoutError:
        return RequestTimeoutError(
            detail=f"GET {shown_path(job.path)}: download_to did not finish within its "
            f"{job.timeout.total:g} s deadline"
        )

    async def _download_to(self, job: DownloadJob, target: Path, reporter: Progress) -> Path:
        """:meth:`download_to` inside its deadline."""
        handle, temp = await acquire_off_loop(
            create_temp, target, release=lambda created: discard(*created)
        )
        state = DownloadState(sink=FileSink(handle), reporter=reporter)
        try:
            while not await self._download_attempt(job, state):
                pass
            await state.sink.flush()
            await off_loop_to_completion(finish, handle)  # never close under a thread's fsync
            await install_undoably(temp, target)
        except BaseException:
            # To its end even if cancelled again meanwhile: no .part file, no open handle.
            await run_to_completion(abandon(state.sink, handle, temp))
            raise
        return target

    async def _download_attempt(self, job: DownloadJob, state: DownloadState) -> bool:
        """One request of a download_to: True when the file is complete, False to go on."""
        loop = asyncio.get_running_loop()
        before = state.received
        try:
            async with self._open_download(
                job.path,
                state.reporter,
                params=job.params,
                headers=state.request_headers(),
                timeout=job.attempt_timeout(loop.time()),
                offset=state.received,
                check_answer=job.check_answer,
            ) as stream:
                if not state.received:
                    state.first = FirstAnswer.of(stream)
                elif not await state.resumed_by(stream):
                    before = 0  # started again from this answer
                state.reporter.restart(state.received)
                async for chunk in stream:
                    await state.sink.write(chunk)
                    state.received += len(chunk)
        except Restart as why:
            await state.restart(why)
            return False
        except CommunicationError:
            if job.expired(loop.time()):
                raise self._past_deadline(job) from None
            state.stalls = 0 if state.received > before else state.stalls + 1
            if (
                not (job.resume and state.first is not None and state.first.resumable)
                or state.stalls >= MAX_STALLED_RESUMES
            ):
                raise
            await state.sink.flush()
            _LOGGER.debug("download interrupted after %d bytes; resuming", state.received)
            return False
        return await state.complete(job.path, before=before, resume=job.resume)
