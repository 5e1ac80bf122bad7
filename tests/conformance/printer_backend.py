"""The printer side the plugin talks to on the LAN, faked on loopback: files, cameras, HTTP.

The plugin's command handlers reach the printer's own software: OctoPrint's and Moonraker's
REST APIs for files (``OctoHttpRequest`` to the local server), PrusaLink's HTTP API, and the
cameras' MJPEG URLs. :class:`PrinterBackend` serves all of those on one loopback port from
one in-memory file system (:class:`PrinterFiles`), which the Bambu Lab fake's FTP stand-in
shares. Pure aiohttp on the event loop, no blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any, Final

import attrs
from aiohttp import web
from yarl import URL

from oe_async.testing.mjpeg_source import build_part, content_type

#: Printer-side secrets the plugin holds (the canary marker is not in them: the plugin logs
#: and echoes them freely, which is not oe_async's to judge; the tests check our reprs).
OCTOPRINT_API_KEY: Final = "op-local-api-key-1234567890"
MOONRAKER_API_KEY: Final = "mr-local-api-key-0987654321"


@attrs.define
class StoredFile:
    data: bytes
    modified: float = attrs.field(factory=time.time)


@attrs.define
class PrinterFiles:
    """The printer's storage, by root (``gcodes``, ``config``, ``logs``) and relative path."""

    roots: dict[str, dict[str, StoredFile]] = attrs.field(
        factory=lambda: {"gcodes": {}, "config": {}, "logs": {}}
    )

    def add(self, root: str, path: str, data: bytes) -> None:
        self.roots[root][path] = StoredFile(data)

    def get(self, root: str, path: str) -> StoredFile | None:
        return self.roots.get(root, {}).get(path)

    def items(self, root: str) -> Iterator[tuple[str, StoredFile]]:
        yield from sorted(self.roots.get(root, {}).items())


@attrs.define
class BackendRecord:
    method: str
    path: str
    query: str
    headers: dict[str, str]


async def _multipart(request: web.Request) -> tuple[str, bytes, dict[str, str]]:
    """A multipart upload as OctoPrint and Moonraker take it: the file and the fields."""
    fields: dict[str, str] = {}
    name, data = "", b""
    async for part in await request.multipart():
        if part.name == "file":
            name = getattr(part, "filename", None) or ""
            data = bytes(await part.read())  # type: ignore[union-attr]
        else:
            fields[str(part.name)] = await part.text()  # type: ignore[union-attr]
    return name, data, fields


class PrinterBackend:
    """One loopback server playing the printer's own APIs and cameras."""

    def __init__(self, jpegs: list[bytes]) -> None:
        self.files = PrinterFiles()
        self.jpegs = jpegs
        self.requests: list[BackendRecord] = []
        #: OctoPrint job commands (select + print) the fake OctoPrint accepted.
        self.octoprint_jobs: list[tuple[str, dict[str, Any]]] = []
        #: PrusaLink prints started (storage/path).
        self.prusalink_starts: list[str] = []
        #: When set, PrusaLink's start answers 409 (the printer is busy).
        self.prusalink_busy = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.port}")

    async def __aenter__(self) -> PrinterBackend:
        app = web.Application(middlewares=[self._record], client_max_size=1024**3)
        routes = app.router
        # cameras
        routes.add_get("/webcam/", self._octoprint_webcam)
        routes.add_get("/cam/{name}/stream", self._stream)
        routes.add_get("/cam/{name}/snapshot", self._snapshot)
        routes.add_get("/api/v1/cameras/snap", self._snapshot)
        # OctoPrint
        routes.add_get("/api/version", self._octoprint_version)
        routes.add_get("/api/files/local", self._octoprint_list)
        routes.add_post("/api/files/local", self._octoprint_upload)
        routes.add_get("/api/files/local/{path:.+}", self._octoprint_details)
        routes.add_post("/api/files/local/{path:.+}", self._octoprint_command)
        routes.add_delete("/api/files/local/{path:.+}", self._octoprint_delete)
        routes.add_get("/downloads/files/local/{path:.+}", self._octoprint_download)
        routes.add_get("/plugin/logging/logs", self._octoprint_logs)
        # Moonraker
        routes.add_get("/server/files/list", self._moonraker_list)
        routes.add_post("/server/files/upload", self._moonraker_upload)
        routes.add_get("/server/files/{root}/{path:.+}", self._moonraker_download)
        routes.add_delete("/server/files/{root}/{path:.+}", self._moonraker_delete)
        # PrusaLink
        routes.add_get("/api/v1/status", self._prusalink_status)
        routes.add_post("/api/v1/files/{storage}/{path:.+}", self._prusalink_start)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(
            BackendRecord(request.method, request.path, request.query_string, dict(request.headers))
        )
        return await handler(request)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ cameras

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type(frozenset())})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            for number in range(6_000):  # ~10 minutes at most: every reader leaves sooner
                frame = self.jpegs[number % len(self.jpegs)]
                await resp.write(build_part(frame, frozenset(), number=number, timestamp=0.0))
                await asyncio.sleep(0.1)
        return resp

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.jpegs[0], content_type="image/jpeg")

    async def _octoprint_webcam(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("action") == "stream":
            return await self._stream(request)
        return await self._snapshot(request)

    # ------------------------------------------------------------------ OctoPrint

    def _octoprint_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("X-Api-Key") != OCTOPRINT_API_KEY:
            return web.json_response({"error": "Forbidden"}, status=403)
        return None

    async def _octoprint_version(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        return web.json_response({"api": "0.1", "server": "1.11.2", "text": "OctoPrint 1.11.2"})

    def _octoprint_file(self, path: str, stored: StoredFile) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        return {
            "name": name,
            "display": name,
            "path": path,
            "type": "machinecode",
            "typePath": ["machinecode", "gcode"],
            "origin": "local",
            "size": len(stored.data),
            "date": int(stored.modified),
            "gcodeAnalysis": {
                "estimatedPrintTime": 5025.5,
                "filament": {"tool0": {"length": 3120.4, "volume": 7.5}},
                "dimensions": {"height": 48.0, "width": 60.0, "depth": 31.0},
            },
            "refs": {"resource": f"/api/files/local/{path}"},
        }

    async def _octoprint_list(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        files = [self._octoprint_file(p, s) for p, s in self.files.items("gcodes")]
        return web.json_response({"files": files, "free": 10**9, "total": 2 * 10**9})

    async def _octoprint_upload(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        name, data, fields = await _multipart(request)
        path = f"{fields['path']}/{name}" if fields.get("path") else name
        self.files.add("gcodes", path, data)
        return web.json_response(
            {
                "done": True,
                "files": {"local": {"name": name, "path": path, "origin": "local"}},
            },
            status=201,
        )

    async def _octoprint_details(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        path = request.match_info["path"]
        stored = self.files.get("gcodes", path)
        if stored is None:
            return web.json_response({"error": "File not found"}, status=404)
        return web.json_response(self._octoprint_file(path, stored))

    async def _octoprint_command(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        path = request.match_info["path"]
        if self.files.get("gcodes", path) is None:
            return web.json_response({"error": "File not found"}, status=404)
        self.octoprint_jobs.append((path, await request.json()))
        return web.Response(status=204)

    async def _octoprint_delete(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        path = request.match_info["path"]
        if self.files.roots["gcodes"].pop(path, None) is None:
            return web.json_response({"error": "File not found"}, status=404)
        return web.Response(status=204)

    async def _octoprint_download(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.get("gcodes", request.match_info["path"])
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _octoprint_logs(self, request: web.Request) -> web.StreamResponse:
        refused = self._octoprint_auth(request)
        if refused is not None:
            return refused
        logs = [
            {"name": name, "size": len(s.data), "date": int(s.modified)}
            for name, s in self.files.items("logs")
        ]
        return web.json_response({"files": logs, "free": 10**9})

    # ------------------------------------------------------------------ Moonraker

    def _moonraker_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("X-Api-Key") != MOONRAKER_API_KEY:
            return web.json_response(
                {"error": {"code": 401, "message": "Unauthorized"}}, status=401
            )
        return None

    async def _moonraker_list(self, request: web.Request) -> web.StreamResponse:
        refused = self._moonraker_auth(request)
        if refused is not None:
            return refused
        root = request.query.get("root", "gcodes")
        result = [
            {
                "path": path,
                "modified": stored.modified,
                "size": len(stored.data),
                "permissions": "rw" if root != "logs" else "r",
            }
            for path, stored in self.files.items(root)
        ]
        return web.json_response({"result": result})

    async def _moonraker_upload(self, request: web.Request) -> web.StreamResponse:
        refused = self._moonraker_auth(request)
        if refused is not None:
            return refused
        name, data, fields = await _multipart(request)
        root = fields.get("root", "gcodes")
        # Moonraker stores names as given but drops spaces at the ends, like the real one
        # normalises: the plugin reports where the file really landed (item.path).
        path = f"{fields['path']}/{name}" if fields.get("path") else name
        self.files.add(root, path, data)
        stored = self.files.get(root, path)
        assert stored is not None
        return web.json_response(
            {
                "result": {
                    "item": {
                        "path": path,
                        "root": root,
                        "modified": stored.modified,
                        "size": len(data),
                        "permissions": "rw",
                    },
                    "print_started": False,
                    "print_queued": False,
                    "action": "create_file",
                }
            },
            status=201,
        )

    async def _moonraker_download(self, request: web.Request) -> web.StreamResponse:
        refused = self._moonraker_auth(request)
        if refused is not None:
            return refused
        stored = self.files.get(request.match_info["root"], request.match_info["path"])
        if stored is None:
            return web.json_response(
                {"error": {"code": 404, "message": "File does not exist"}}, status=404
            )
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _moonraker_delete(self, request: web.Request) -> web.StreamResponse:
        refused = self._moonraker_auth(request)
        if refused is not None:
            return refused
        root, path = request.match_info["root"], request.match_info["path"]
        if self.files.roots.get(root, {}).pop(path, None) is None:
            return web.json_response(
                {"error": {"code": 404, "message": "File does not exist"}}, status=404
            )
        return web.json_response(
            {"result": {"item": {"path": path, "root": root}, "action": "delete_file"}}
        )

    # ------------------------------------------------------------------ PrusaLink

    async def _prusalink_status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"printer": {"state": "IDLE", "temp_bed": 22.1}})

    async def _prusalink_start(self, request: web.Request) -> web.StreamResponse:
        if self.prusalink_busy:
            return web.json_response(
                {"title": "Conflict", "message": "Printer is busy"}, status=409
            )
        self.prusalink_starts.append(
            f"{request.match_info['storage']}/{request.match_info['path']}"
        )
        return web.Response(status=204)
