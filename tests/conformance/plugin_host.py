"""The real plugin's command handler behind a loopback aiohttp server, as the relay sees it.

OctoEverywhere's server hands every request for ``/octoeverywhere-command-api/...`` to the
plugin as a ``WebStreamMsg`` (an ``HttpInitialContext`` with the path, query and method,
then the body in data messages); the plugin's ``OctoWebStreamHttpHelper`` feeds the body
into an ``UploadBody`` and calls ``CommandHandler.HandleCommand(context, uploadBody)``, the
function that turns path + body/query into the envelope and its ``text/json`` answer (or,
for webcam and file downloads, the raw answer). :class:`PluginHost` does the same with the
plugin's own flatbuffers and classes, then relays the ``HttpResult`` back like the relay:
status, headers and body as they are.

Everything here is ours; the plugin is imported from the extracted source (see
:mod:`tests.conformance.plugin_source`). The plugin is synchronous: every call into it runs
in this host's own thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from aiohttp import web
from yarl import URL

#: The relay sends an upload in messages of this size (a WebStream data message).
DATA_MESSAGE_SIZE: Final = 64 * 1024
#: Headers the relay does not pass through as they are (it frames the body itself).
_HOP_BY_HOP: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)

LOGGER: Final = logging.getLogger("oe_conformance.plugin")
# The plugin logs freely (printer addresses, URLs with credentials in them): keep its
# records in its own logger so the suite's secret canary judges only oe_async.
LOGGER.propagate = False
LOGGER.addHandler(logging.NullHandler())
LOGGER.setLevel(logging.DEBUG)


class _Plugin:
    """The plugin's modules this host uses (imported once the source is on sys.path)."""

    def __init__(self) -> None:
        import octoflatbuffers  # noqa: PLC0415 (the plugin's own requirement)
        from octoeverywhere.commandhandler import CommandHandler  # noqa: PLC0415
        from octoeverywhere.compression import CompressionContext  # noqa: PLC0415
        from octoeverywhere.Proto import HttpInitialContext, WebStreamMsg  # noqa: PLC0415
        from octoeverywhere.Proto.PathTypes import PathTypes  # noqa: PLC0415
        from octoeverywhere.WebStream.uploadbody import UploadBody  # noqa: PLC0415

        self.flatbuffers = octoflatbuffers
        self.CommandHandler = CommandHandler
        self.CompressionContext = CompressionContext
        self.HttpInitialContext = HttpInitialContext
        self.WebStreamMsg = WebStreamMsg
        self.PathTypes = PathTypes
        self.UploadBody = UploadBody


def open_message(plugin: _Plugin, stream_id: int, path: str, method: str, size: int) -> Any:
    """The ``WebStreamMsg`` that opens a relayed HTTP request (as OctoEverywhere sends it)."""
    builder = plugin.flatbuffers.Builder(256 + len(path))
    path_offset = builder.CreateString(path)
    method_offset = builder.CreateString(method)
    ctx = plugin.HttpInitialContext
    ctx.Start(builder)
    ctx.AddPath(builder, path_offset)
    ctx.AddPathType(builder, plugin.PathTypes.Relative)
    ctx.AddMethod(builder, method_offset)
    context_offset = ctx.End(builder)
    msg = plugin.WebStreamMsg
    msg.Start(builder)
    msg.AddStreamId(builder, stream_id)
    msg.AddIsOpenMsg(builder, True)
    msg.AddFullStreamDataSize(builder, size)
    msg.AddIsDataTransmissionDone(builder, size == 0)
    msg.AddHttpInitialContext(builder, context_offset)
    builder.Finish(msg.End(builder))
    return msg.WebStreamMsg.GetRootAs(builder.Output(), 0)


def data_message(plugin: _Plugin, stream_id: int, data: bytes, *, last: bool) -> Any:
    """A ``WebStreamMsg`` carrying part of a request body."""
    builder = plugin.flatbuffers.Builder(len(data) + 128)
    data_offset = builder.CreateByteVector(data)
    msg = plugin.WebStreamMsg
    msg.Start(builder)
    msg.AddStreamId(builder, stream_id)
    msg.AddData(builder, data_offset)
    msg.AddIsDataTransmissionDone(builder, last)
    builder.Finish(msg.End(builder))
    return msg.WebStreamMsg.GetRootAs(builder.Output(), 0)


class PluginHost:
    """A loopback aiohttp server in front of the real ``CommandHandler``.

    Start it with ``async with PluginHost(...) as host``; ``host.url`` is the App Connection
    URL an oe_async client uses. ``requests`` records what the client sent (method, path
    with query, body size).
    """

    def last_json(self, command: str) -> Any:
        """The decoded body of the plugin's last whole answer to ``command``."""
        for path, _, _, body in reversed(self.answers):
            if path.split("?")[0].endswith("/" + command):
                return json.loads(body)
        raise AssertionError(f"the plugin gave no whole answer to {command}")

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._plugin = _Plugin()
        self._pool = pool
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self.url = URL()
        self.requests: list[tuple[str, str, int]] = []
        #: Every whole answer the plugin gave: (path, HTTP status, headers, body).
        self.answers: list[tuple[str, int, dict[str, str], bytes]] = []

    async def __aenter__(self) -> PluginHost:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/octoeverywhere-command-api/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = URL(f"http://127.0.0.1:{port}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.raw_path  # the path and query as they came: what the relay passes on
        self.requests.append((request.method, path, len(body)))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._pool, self._run_command, request.method, path, body
        )
        return await self._relay(request, result)

    def _run_command(self, method: str, path: str, body: bytes) -> Any:
        """What OctoWebStreamHttpHelper does for a command request (in a plugin thread)."""
        plugin = self._plugin
        stream_id = next(self._ids)
        opening = open_message(plugin, stream_id, path, method, len(body))
        upload = plugin.UploadBody(
            LOGGER, stream_id, len(body) or None, plugin.CompressionContext(LOGGER)
        )
        try:
            for start in range(0, len(body), DATA_MESSAGE_SIZE):
                part = body[start : start + DATA_MESSAGE_SIZE]
                last = start + DATA_MESSAGE_SIZE >= len(body)
                upload.AppendMessage(data_message(plugin, stream_id, part, last=last))
            upload.Finalize()
            context = opening.HttpInitialContext()
            handler = plugin.CommandHandler.Get()
            if not handler.IsCommandRequest(context):
                return None
            return handler.HandleCommand(context, upload)
        finally:
            upload.Cleanup()

    async def _relay(self, request: web.Request, result: Any) -> web.StreamResponse:
        """Send the plugin's ``HttpResult`` on, as the relay does: status, headers, body."""
        loop = asyncio.get_running_loop()
        if result is None:  # the plugin closed the stream: the relay reports a failure
            return web.Response(status=502, text="the plugin did not answer")
        headers = {k: v for k, v in result.Headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            if result.FullBodyBuffer is not None:
                data = bytes(result.FullBodyBuffer.GetBytesLike())
                self.answers.append((request.raw_path, result.StatusCode, headers, data))
                return web.Response(status=result.StatusCode, headers=headers, body=data)
            length = result.Headers.get("Content-Length")
            response = web.StreamResponse(status=result.StatusCode, headers=headers)
            if length is not None:
                response.content_length = int(length)
            await response.prepare(request)
            chunks = _body_chunks(result)
            with contextlib.suppress(ConnectionError):
                while True:
                    chunk = await loop.run_in_executor(self._pool, next, chunks, b"")
                    if not chunk:
                        break
                    await response.write(chunk)
                await response.write_eof()
            return response
        finally:
            await loop.run_in_executor(self._pool, result.Free)


def _body_chunks(result: Any) -> Iterator[bytes]:
    """The body of a streamed ``HttpResult``: a custom stream (QuickCam, Bambu's FTP
    download, log files) or the printer's own HTTP answer (``requests``, stream=True)."""
    callback: Callable[[], Any] | None = result.GetCustomBodyStreamCallback
    if callback is not None:
        while True:
            buffer = callback()
            if buffer is None:
                return
            yield bytes(buffer.GetBytesLike())
    response = result.ResponseForBodyRead
    if response is not None:
        yield from response.iter_content(chunk_size=64 * 1024)
