"""The fake printer behind the simulator's relay: a few OctoPrint-like JSON endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ._core import ORIGIN_KEY, simulator_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _check_api_key(request: web.Request) -> web.Response | None:
    """OctoPrint answers 403 when an API key is required and missing or wrong."""
    required = simulator_of(request).state.octoprint_api_key
    if required is not None and request.headers.get("X-Api-Key") != required:
        return web.json_response({"error": "Invalid API key"}, status=403)
    return None


async def version(request: web.Request) -> web.StreamResponse:
    """``GET /api/version``."""
    return _check_api_key(request) or web.json_response(
        {"api": "0.1", "server": "1.10.3", "text": "OctoPrint 1.10.3 (oe_async simulator)"}
    )


async def printer_state(request: web.Request) -> web.StreamResponse:
    """``GET /api/printer``: temperatures and state flags."""
    refusal = _check_api_key(request)
    if refusal is not None:
        return refusal
    printing = simulator_of(request).state.active_print
    return web.json_response(
        {
            "temperature": {
                "tool0": {"actual": 214.8, "target": 215.0, "offset": 0},
                "bed": {"actual": 59.9, "target": 60.0, "offset": 0},
            },
            "state": {
                "text": "Printing" if printing else "Operational",
                "flags": {"operational": True, "printing": printing, "paused": False},
            },
        }
    )


async def job(request: web.Request) -> web.StreamResponse:
    """``GET /api/job``: the current job and its progress."""
    refusal = _check_api_key(request)
    if refusal is not None:
        return refusal
    printing = simulator_of(request).state.active_print
    return web.json_response(
        {
            "job": {"file": {"name": "benchy.gcode", "origin": "local", "size": 1843214}},
            "progress": {"completion": 42.5 if printing else None, "printTimeLeft": 3120},
            "state": "Printing" if printing else "Operational",
        }
    )


async def job_command(request: web.Request) -> web.StreamResponse:
    """``POST /api/job``: start/cancel/pause; 409 when the state does not allow it."""
    refusal = _check_api_key(request)
    if refusal is not None:
        return refusal
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "Malformed JSON body"}, status=400)
    command = body.get("command") if isinstance(body, dict) else None
    state = simulator_of(request).state
    if command == "start":
        if state.active_print:
            return web.json_response({"error": "Printer is already printing"}, status=409)
        state.active_print = True
    elif command == "cancel":
        if not state.active_print:
            return web.json_response({"error": "Printer is not printing"}, status=409)
        state.active_print = False
    elif command != "pause":
        return web.json_response({"error": f"Unknown command: {command}"}, status=400)
    return web.Response(status=204)


async def _command_body(request: web.Request) -> dict[str, object] | web.Response:
    """The JSON object of an OctoPrint command request (400 as OctoPrint answers otherwise)."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "Malformed JSON body in request"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "Expected a JSON object"}, status=400)
    return body


def _no_content(valid: frozenset[str] | None) -> Handler:
    """An OctoPrint control endpoint that answers a known ``command`` with 204 No Content.

    As ``/api/printer/tool``, ``/api/printer/bed`` and ``/api/connection`` do in OctoPrint;
    ``valid=None`` is ``/api/printer/command``, which takes any G-code in ``command`` or
    ``commands``.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        refusal = _check_api_key(request)
        if refusal is not None:
            return refusal
        body = await _command_body(request)
        if isinstance(body, web.Response):
            return body
        value = body.get("command")
        if valid is None:
            gcode = body.get("commands", value)
            if not gcode or not isinstance(gcode, str | list):
                return web.json_response({"error": "command or commands required"}, status=400)
        elif value not in valid:
            return web.json_response({"error": f"Unknown command: {value}"}, status=400)
        simulator_of(request).printer_commands.append((request.path, body))
        return web.Response(status=204)

    return handle


async def connection(request: web.Request) -> web.StreamResponse:
    """``GET /api/connection``: the serial connection's state and options."""
    refusal = _check_api_key(request)
    if refusal is not None:
        return refusal
    return web.json_response(
        {
            "current": {"state": "Operational", "port": "VIRTUAL", "baudrate": 115200},
            "options": {"ports": ["VIRTUAL"], "baudrates": [115200]},
        }
    )


async def select_file(request: web.Request) -> web.StreamResponse:
    """``POST /api/files/local/<path>`` with ``{"command": "select"}``: 204 (OctoPrint)."""
    refusal = _check_api_key(request)
    if refusal is not None:
        return refusal
    body = await _command_body(request)
    if isinstance(body, web.Response):
        return body
    path = request.match_info["path"]
    if simulator_of(request).files.get(path) is None:
        return web.json_response({"error": "File not found"}, status=404)
    if body.get("command") != "select":
        return web.json_response({"error": f"Unknown command: {body.get('command')}"}, status=400)
    simulator_of(request).printer_commands.append((request.path, body))
    return web.Response(status=204)


async def echo(request: web.Request) -> web.StreamResponse:
    """``ANY /echo/...``: what the printer received (method, path, query, body size)."""
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "body_bytes": len(body),
            "x_api_key": request.headers.get("X-Api-Key") is not None,
        }
    )


#: The plugin version the simulated OctoEverywhere plugin tells.
PLUGIN_VERSION = "4.1.0"


async def octoeverywhere_plugin(request: web.Request) -> web.StreamResponse:
    """``GET /api/plugin/octoeverywhere``: the OctoEverywhere plugin's identity.

    As the real plugin's ``on_api_get`` answers (``flask.jsonify(PluginVersion=...,
    PrinterId=...)``, ``is_api_protected`` False: no API key needed) on an OctoPrint
    printer; 404 elsewhere (another platform, or ``printer_id`` None). The LAN instance
    tells ``lan_printer_id``.
    """
    state = simulator_of(request).state
    lan = request.app[ORIGIN_KEY] == "lan"
    printer_id = state.lan_printer_id if lan else state.printer_id
    if printer_id is None or state.plugin.platform not in (None, "octoprint"):
        raise web.HTTPNotFound
    return web.json_response({"PluginVersion": PLUGIN_VERSION, "PrinterId": printer_id})


def setup(app: web.Application) -> None:
    """Add the fake printer's routes to the relay application."""
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/printer", printer_state)
    app.router.add_get("/api/job", job)
    app.router.add_post("/api/job", job_command)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    # OctoPrint's control endpoints answer 204 No Content.
    app.router.add_post("/api/printer/command", _no_content(None))
    app.router.add_post("/api/printer/tool", _no_content(frozenset({"target", "select", "offset"})))
    app.router.add_post("/api/printer/bed", _no_content(frozenset({"target", "offset"})))
    app.router.add_get("/api/connection", connection)
    app.router.add_post("/api/connection", _no_content(frozenset({"connect", "disconnect"})))
    app.router.add_post("/api/files/local/{path:.+}", select_file)
    app.router.add_get("/api/plugin/octoeverywhere", octoeverywhere_plugin)
