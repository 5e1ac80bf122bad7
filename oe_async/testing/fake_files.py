"""The fake printer's file routes: OctoPrint/Moonraker/plugin uploads, ranged downloads.

Uploads are streamed and hashed (sha256) as they arrive. No file I/O happens here at all,
so the simulator never blocks its event loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import BodyPartReader, web

from oe_async.testing._core import plugin_json, plugin_raw_error, relay_status, simulator_of
from oe_async.testing.files import CHUNK, SimFile
from oe_async.testing.plugin_files import check_file_path, unsupported_files

_RANGE_RE: Final = re.compile(r"^bytes=(\d+)-(\d*)$")
#: One ``; key=value`` or ``; key="value"`` parameter of a ``Content-Disposition`` header.
_PARAM_RE: Final = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"([^"]*)"|([^;]*))')


def form_names(header: str) -> dict[str, str]:
    """``Content-Disposition`` parameters read the way Moonraker and OctoPrint read them.

    The quoted value is taken as it is: no percent-decoding and no backslash escapes
    (Moonraker's streaming form parser and Tornado's header parser do neither), so a name
    sent percent-encoded is stored percent-encoded, as the real printers do. The header
    arrives as UTF-8. ``filename*`` (RFC 5987) is ignored, as Moonraker ignores it.
    """
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(header):
        key = match.group(1).lower()
        value = match.group(2) if match.group(2) is not None else match.group(3).strip()
        params.setdefault(key, value)
    return params


class _OverLimit(Exception):  # noqa: N818 (control flow inside the simulator)
    pass


async def _receive(request: web.Request, path: str, chunks: AsyncIterator[bytes]) -> SimFile:
    """Hash (and keep, when small) an incoming file, enforcing the upload limit."""
    sim = simulator_of(request)
    limit = sim.state.limits.max_upload_bytes
    hasher = hashlib.sha256()
    kept: list[bytes] | None = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            raise _OverLimit
        hasher.update(chunk)
        if kept is not None:
            kept.append(chunk)
            if size > sim.files.keep_limit:
                kept = None
    path = sim.files.normalise(path)
    simfile = SimFile(
        path=path,
        size=size,
        sha256=hasher.hexdigest(),
        data=b"".join(kept) if kept is not None else None,
    )
    sim.files.files[path] = simfile
    sim.uploads.append(simfile)
    return simfile


class _PartChunks:
    """A multipart file part's chunks.

    A class rather than an async generator: the request log keeps a dropped upload's
    exception (and so its frames) alive, and every such generator would then be finalised
    by the loop's ``shutdown_asyncgens`` (200 of them took 73-107 ms in debug mode).
    """

    def __init__(self, part: BodyPartReader) -> None:
        self._part = part

    def __aiter__(self) -> _PartChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._part.read_chunk(CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk


async def _multipart_upload(
    request: web.Request, file_field: str = "file"
) -> tuple[SimFile | None, dict[str, str]]:
    """Read a multipart upload: the file part (streamed) and the plain fields."""
    reader = await request.multipart()
    fields: dict[str, str] = {}
    stored: SimFile | None = None
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue  # nested multipart: not something a printer accepts
        # Not part.name/part.filename: aiohttp undoes backslash escapes a printer keeps.
        names = form_names(part.headers.get("Content-Disposition", ""))
        name, filename = names.get("name", ""), names.get("filename")
        if name == file_field and filename:
            # Plain fields may come before or after the file; "path" is applied after.
            stored = await _receive(request, filename, _PartChunks(part))
        else:
            fields[name] = await part.text()
    return stored, fields


def _move(request: web.Request, simfile: SimFile, folder: str) -> SimFile:
    files = simulator_of(request).files
    if folder:
        files.files.pop(simfile.path, None)
        simfile.path = files.normalise(f"{folder}/{simfile.path}")
        files.files[simfile.path] = simfile
    return simfile


async def octoprint_upload(request: web.Request) -> web.StreamResponse:
    """``POST /api/files/{local|sdcard}`` (multipart: file, select, print, path)."""
    location = request.match_info["location"]
    if location not in ("local", "sdcard"):
        return web.json_response({"error": f"Unknown location {location}"}, status=404)
    try:
        simfile, fields = await _multipart_upload(request)
    except _OverLimit:
        return relay_status(608)
    if simfile is None:
        return web.json_response({"error": "No file included"}, status=400)
    simfile = _move(request, simfile, fields.get("path", ""))
    name = simfile.path.rsplit("/", 1)[-1]
    base = f"{request.scheme}://{request.host}"
    return web.json_response(
        {
            "done": True,
            "files": {
                location: {
                    "name": name,
                    "origin": location,
                    "path": simfile.path,
                    "refs": {
                        "resource": f"{base}/api/files/{location}/{simfile.path}",
                        "download": f"{base}/downloads/files/{location}/{simfile.path}",
                    },
                }
            },
            "effectiveSelect": fields.get("select") == "true",
            "effectivePrint": fields.get("print") == "true",
        },
        status=201,
    )


async def moonraker_upload(request: web.Request) -> web.StreamResponse:
    """``POST /server/files/upload`` (multipart: file, root, path, print)."""
    try:
        simfile, fields = await _multipart_upload(request)
    except _OverLimit:
        return relay_status(608)
    if simfile is None:
        return web.json_response({"error": {"code": 400, "message": "No file"}}, status=400)
    root = fields.get("root", "gcodes")
    simfile = _move(request, simfile, f"{root}/{fields.get('path', '')}")
    # The bare object, no "result" wrapper: what Moonraker answers to an upload
    # (tests/fixtures/moonraker/upload_create_file_201.json).
    return web.json_response(
        {
            "action": "create_file",
            "item": {
                "modified": simfile.modified,
                "size": simfile.size,
                "permissions": "rw",
                "path": simfile.path.split("/", 1)[1],
                "root": root,
            },
            "print_started": fields.get("print") == "true",
            "print_queued": False,
        },
        status=201,
    )


async def plugin_upload(request: web.Request) -> web.StreamResponse:
    """``/octoeverywhere-command-api/files/upload?path=<VirtualPath>`` (the raw body).

    As the real plugin answers: a ``text/json`` envelope, 788 on a platform without file
    commands, 400 for a path outside the writable roots or an empty body.
    """
    sim = simulator_of(request)
    plugin = sim.state.plugin
    args = {k.lower(): v for k, v in request.query.items()}
    status, refusal, path = 200, None, "plugin-upload.tmp"
    if "files/upload" in plugin.failures:
        status, refusal = plugin.failures["files/upload"]
    elif plugin.file_roots is None:
        status, refusal = 788, unsupported_files(plugin.platform)
    else:
        try:
            path = check_file_path(args, plugin.writable_roots)
        except ValueError as err:
            status, refusal = 400, str(err)
    try:  # the relay hands the plugin the whole body first (and enforces 608 on the way)
        simfile = await _receive(request, path, request.content.iter_chunked(CHUNK))
    except _OverLimit:
        return relay_status(608)
    if refusal is None and simfile.size == 0:
        status, refusal = 400, "files/upload received an empty body. Send raw file bytes."
    if refusal is not None:
        sim.files.files.pop(simfile.path, None)
        sim.uploads.remove(simfile)
        return plugin_json({"Status": status, "Error": refusal})
    relative = simfile.path.split("/", 1)[1]
    return plugin_json(
        {
            "Status": 200,
            plugin.result_key: {
                "VirtualPath": simfile.path,
                "PlatformPath": relative,
                "SizeBytes": simfile.size,
                "PrinterResponse": {"done": True, "files": {"local": {"path": relative}}},
            },
        }
    )


def _byte_range(request: web.Request, simfile: SimFile, *, ranges: bool) -> tuple[int, int] | None:
    """The requested ``(first, last)`` byte range, or None for the whole file."""
    header = request.headers.get("Range")
    if not ranges or header is None:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != simfile.etag:
        return None  # the file changed: send it whole (RFC 9110 13.1.5)
    match = _RANGE_RE.match(header.strip())
    if not match:
        return None
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else simfile.size - 1
    return first, min(last, simfile.size - 1)


async def serve_file(request: web.Request, simfile: SimFile | None) -> web.StreamResponse:
    """Send a file with Content-Length, ranges, and the transfer faults applied."""
    sim = simulator_of(request)
    if simfile is None:
        return web.json_response({"error": "File not found"}, status=404)
    limit = sim.state.limits.max_download_bytes
    if limit is not None and simfile.size > limit:
        return relay_status(607)
    faults = sim.state.transfer
    byte_range = _byte_range(request, simfile, ranges=faults.ranges)
    if byte_range is not None and byte_range[0] >= simfile.size:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{simfile.size}"})
    first, last = byte_range if byte_range is not None else (0, simfile.size - 1)
    resp = web.StreamResponse(status=206 if byte_range is not None else 200)
    resp.content_type = "application/octet-stream"
    if faults.chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = max(0, last - first + 1)
    resp.headers["ETag"] = simfile.etag
    resp.headers["Last-Modified"] = email.utils.formatdate(simfile.modified, usegmt=True)
    if faults.ranges:
        resp.headers["Accept-Ranges"] = "bytes"
    if byte_range is not None:
        resp.headers["Content-Range"] = f"bytes {first}-{last}/{simfile.size}"
    await resp.prepare(request)

    drop_at = faults.drop_after if faults.drop_times is None or faults.drop_times > 0 else None
    step = faults.trickle[0] if faults.trickle else CHUNK
    offset = first
    sent = 0
    while offset <= last:
        size = min(step, last + 1 - offset)
        if drop_at is not None and sent + size > drop_at:
            await resp.write(simfile.read(offset, drop_at - sent))
            if faults.drop_times is not None:
                faults.drop_times -= 1
            assert request.transport is not None  # noqa: S101
            request.transport.close()  # flushes what was written, then hangs up
            return resp
        await resp.write(simfile.read(offset, size))
        offset += size
        sent += size
        if faults.trickle:
            await asyncio.sleep(faults.trickle[1])
    await resp.write_eof()
    return resp


async def octoprint_download(request: web.Request) -> web.StreamResponse:
    """``GET /downloads/files/local/{path}``."""
    return await serve_file(request, simulator_of(request).files.get(request.match_info["path"]))


async def moonraker_download(request: web.Request) -> web.StreamResponse:
    """``GET /server/files/{root}/{path}``."""
    root, path = request.match_info["root"], request.match_info["path"]
    return await serve_file(request, simulator_of(request).files.get(f"{root}/{path}"))


async def plugin_download(request: web.Request) -> web.StreamResponse:
    """``/octoeverywhere-command-api/files/download?path=<VirtualPath>``.

    The file's bytes, or the plugin's raw error: a ``text/json`` body with the plugin
    status, and that status as the HTTP status when it is one (404), else 400 (788...).
    """
    sim = simulator_of(request)
    plugin = sim.state.plugin
    if "files/download" in plugin.failures:
        return plugin_raw_error(*plugin.failures["files/download"])
    if plugin.file_roots is None:
        return plugin_raw_error(788, unsupported_files(plugin.platform))
    args = {k.lower(): v for k, v in request.query.items()}
    try:
        path = check_file_path(args, plugin.file_roots)
    except ValueError as err:
        return plugin_raw_error(400, str(err))
    simfile = sim.files.get(path)
    if simfile is None:
        return plugin_raw_error(404, "files/download failed: file was not found.")
    return await serve_file(request, simfile)


def setup(app: web.Application) -> None:
    """Add the file routes to the relay application."""
    app.router.add_post("/api/files/{location}", octoprint_upload)
    app.router.add_post("/server/files/upload", moonraker_upload)
    app.router.add_route("*", "/octoeverywhere-command-api/files/upload", plugin_upload)
    app.router.add_get("/downloads/files/local/{path:.+}", octoprint_download)
    app.router.add_get("/server/files/{root}/{path:.+}", moonraker_download)
    app.router.add_route("*", "/octoeverywhere-command-api/files/download", plugin_download)
