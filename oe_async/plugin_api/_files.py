"""``printer.plugin``'s file commands: list, details, upload, download, delete.

:class:`PluginFiles` is a base of :class:`oe_async.PluginAPI`. Uploads and downloads go
through :class:`oe_async.transfer.Files` (streamed, limit-checked, progress, resume).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from oe_async._convert import structure, structure_list
from oe_async._plugin_wire import (
    MAX_ENVELOPE_SIZE,
    PLUGIN_PREFIX,
    content_error,
    plugin_error_from_http,
    unwrap_envelope,
)
from oe_async._redact import KnownSecrets
from oe_async.errors import InvalidArgumentError, PrinterHTTPError
from oe_async.plugin_models import FileDetails, FileEntry, PluginFile
from oe_async.retry import RetryPolicy
from oe_async.transfer import DownloadStream, ProgressCallback, UploadSource

from ._args import check_text
from ._calls import PluginCalls

DOWNLOAD_PATH: Final = PLUGIN_PREFIX + "files/download"
#: The roots ``files/list`` takes.
ROOTS: Final = frozenset({"gcode", "config", "logs"})


def entries(result: Any) -> list[FileEntry]:
    """``files/list`` answers a list of roots, one root folder, or an object holding a list."""
    if isinstance(result, Mapping) and "Name" not in result:
        lists = [v for v in result.values() if isinstance(v, list)]
        result = lists[0] if len(lists) == 1 else []
    if isinstance(result, Mapping):
        result = [result]
    return structure_list(result, FileEntry, what="files/list answer")


class PluginFiles(PluginCalls):
    """The plugin's file commands (a base of :class:`oe_async.PluginAPI`)."""

    async def list_files(
        self,
        root: str | None = None,
        *,
        path: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[FileEntry]:
        """The printer's files as a tree (``root``: "gcode", "config" or "logs")."""
        params: dict[str, str] = {}
        if root is not None:
            if root not in ROOTS:
                raise InvalidArgumentError(f"root must be one of {sorted(ROOTS)} (got {root!r})")
            params["root"] = root
        if path is not None:
            params["path"] = check_text("path", path)
        return entries(
            await self._run("GET", "files/list", params=params or None, io=(timeout, retry))
        )

    async def file_details(
        self,
        path: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> FileDetails:
        """What the printer knows about a file (size, time, the slicer's estimates).

        Fields the platform does not report are None (Bambu Lab: only size and time).

        Raises:
            PluginCommandFailedError: no such file (``plugin_status`` 404) or a path outside
                the roots the platform has metadata for (400).

        """
        result = await self._run(
            "GET", "files/details", params={"path": check_text("path", path)}, io=(timeout, retry)
        )
        return structure(result, FileDetails, what="files/details answer")

    async def upload_file(
        self,
        path: str,
        source: UploadSource,
        *,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        retry: bool = False,
    ) -> PluginFile:
        """Upload ``source`` to ``path`` (a ``VirtualPath`` such as ``gcode/part.gcode``).

        A raw ``PUT`` through the transfer machinery: streamed, limit-checked, progress.
        """
        answer = await self._files.upload(
            f"{PLUGIN_PREFIX}files/upload?{urlencode({'path': check_text('path', path)})}",
            source,
            raw=True,
            method="PUT",
            progress=progress,
            size=size,
            retry=retry,
        )
        result = unwrap_envelope(answer.data, command="files/upload", secrets=self._funnel.secrets)
        return structure(result, PluginFile, what="files/upload answer")

    def stream_file(
        self, path: str, *, progress: ProgressCallback | None = None
    ) -> AbstractAsyncContextManager[DownloadStream]:
        """Download a file chunk by chunk (``async with plugin.stream_file(p) as chunks``).

        Raises the plugin's errors like :meth:`download_file` does, on opening.
        """
        return self._stream_file(check_text("path", path), progress)

    @contextlib.asynccontextmanager
    async def _stream_file(
        self, path: str, progress: ProgressCallback | None
    ) -> AsyncIterator[DownloadStream]:
        # Only errors from opening are the plugin's to translate, never the caller's own.
        opened = False
        try:
            async with self._files.download(
                DOWNLOAD_PATH,
                params={"path": path},
                progress=progress,
                check_answer=functools.partial(refuse_plugin_json, secrets=self._funnel.secrets),
            ) as stream:
                opened = True
                yield stream
        except PrinterHTTPError as err:
            mapped = None if opened else plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise

    async def download_file(
        self,
        path: str,
        dest: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
    ) -> Path:
        """Download a file to ``dest`` atomically (see ``PrinterConnection.download_to``).

        Raises:
            PluginCommandFailedError: no such file (``plugin_status`` 404), or a plugin
                too old for file commands (754); ``dest`` is left untouched.
            PrinterSoftwareNotConnectedError: the printer is not connected (785).
            UnsupportedOnPlatformError: the platform has no file commands (788).

        """
        try:
            return await self._files.download_to(
                DOWNLOAD_PATH,
                dest,
                params={"path": check_text("path", path)},
                progress=progress,
                resume=resume,
                check_answer=functools.partial(refuse_plugin_json, secrets=self._funnel.secrets),
            )
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise

    async def delete_file(
        self,
        path: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> PluginFile:
        """Delete the file at ``path``."""
        result = await self._command(
            "files/delete", params={"path": check_text("path", path)}, io=(timeout, retry)
        )
        return structure(result, PluginFile, what="files/delete answer")


async def refuse_plugin_json(stream: DownloadStream, *, secrets: KnownSecrets) -> None:
    """A download the plugin answered with its own JSON (``text/json``) is an error.

    Printers serve files as what they are (octet-stream, Moonraker and OctoPrint by file
    extension); ``text/json`` is the plugin's own media type, for its envelopes. An old
    plugin without file commands answers ``files/download`` with HTTP 200 and
    ``{"Status": 754}``, and a failure inside the command with ``{"Status": 752}``: saving
    that as the file would lose the error.
    """
    if stream.headers.get("Content-Type", "").split(";")[0].strip().lower() != "text/json":
        return
    body = b""
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_ENVELOPE_SIZE:
            break
    raise content_error(body, what="files/download", secrets=secrets)
