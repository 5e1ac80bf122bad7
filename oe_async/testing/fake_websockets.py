"""The fake printer's WebSockets: an OctoPrint-like push socket and Moonraker-like JSON-RPC.

``/sockjs/websocket`` sends ``{"connected": ...}`` on open, answers ``subscribe``/``auth``
messages, and pushes ``{"current": ...}`` every ``sim.state.ws_interval`` seconds.
``/websocket`` answers ``server.info``, ``server.connection.identify`` and
``printer.objects.subscribe`` (after which it pushes ``notify_status_update``). Faults:
``sim.kill_websockets()`` drops every socket without a close frame, and
``sim.close_websockets(code)`` closes them with a code (6xx like the relay's MQTT proxy).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from oe_async.testing._core import SimulatorCore, simulator_of


def _current(sim: SimulatorCore) -> dict[str, Any]:
    printing = sim.state.active_print
    return {
        "current": {
            "state": {
                "text": "Printing" if printing else "Operational",
                "flags": {"printing": printing},
            },
            "progress": {"completion": 42.5 if printing else None},
            "temps": [{"tool0": {"actual": 214.8, "target": 215.0}}],
        }
    }


def _status(sim: SimulatorCore) -> dict[str, Any]:
    return {
        "print_stats": {"state": "printing" if sim.state.active_print else "standby"},
        "extruder": {"temperature": 214.8, "target": 215.0},
    }


async def _serve(request: web.Request, handle: Any, push: Any) -> web.WebSocketResponse:
    sim = simulator_of(request)
    ws = web.WebSocketResponse(heartbeat=None, autoping=True)
    await ws.prepare(request)
    entry = (ws, request)
    sim.websockets.append(entry)
    state: dict[str, Any] = {}
    try:
        await handle(ws, sim, None, state)
        while not ws.closed:
            try:
                message = await ws.receive(timeout=sim.state.ws_interval)
            except TimeoutError:
                await push(ws, sim, state)
                continue
            if message.type is WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except ValueError:
                    data = message.data
                sim.ws_received.append((request.path, data))
                await handle(ws, sim, data, state)
            elif message.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                break
    except ConnectionError:
        pass
    finally:
        if entry in sim.websockets:
            sim.websockets.remove(entry)
    return ws


async def _octoprint_handle(
    ws: web.WebSocketResponse, sim: SimulatorCore, data: Any, state: dict[str, Any]
) -> None:
    if data is None:
        await ws.send_json(
            {"connected": {"version": "1.10.3", "display_version": "1.10.3", "safe_mode": False}}
        )
    elif isinstance(data, dict) and ("subscribe" in data or "auth" in data):
        state["subscribed"] = True
        await ws.send_json({"event": {"type": "Subscribed", "payload": data}})


async def _octoprint_push(
    ws: web.WebSocketResponse, sim: SimulatorCore, state: dict[str, Any]
) -> None:
    await ws.send_json(_current(sim))


async def octoprint_socket(request: web.Request) -> web.StreamResponse:
    """``/sockjs/websocket`` (OctoPrint's push socket, raw WebSocket transport)."""
    return await _serve(request, _octoprint_handle, _octoprint_push)


async def _moonraker_handle(
    ws: web.WebSocketResponse, sim: SimulatorCore, data: Any, state: dict[str, Any]
) -> None:
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        if data is not None:
            await ws.send_json(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": -32600, "message": "Invalid Request"},
                    "id": None,
                }
            )
        return
    method, ident = data.get("method"), data.get("id")
    if method == "server.info":
        result: Any = {
            "klippy_connected": True,
            "klippy_state": "ready",
            "moonraker_version": "v0.9.3",
        }
    elif method == "server.connection.identify":
        result = {"connection_id": len(sim.ws_received)}
    elif method == "printer.objects.subscribe":
        state["subscribed"] = True
        result = {"eventtime": time.monotonic(), "status": _status(sim)}
    else:
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "error": {"code": -32601, "message": f"Method not found: {method}"},
                "id": ident,
            }
        )
        return
    await ws.send_json({"jsonrpc": "2.0", "result": result, "id": ident})


async def _moonraker_push(
    ws: web.WebSocketResponse, sim: SimulatorCore, state: dict[str, Any]
) -> None:
    if state.get("subscribed"):
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "method": "notify_status_update",
                "params": [_status(sim), time.monotonic()],
            }
        )


async def moonraker_socket(request: web.Request) -> web.StreamResponse:
    """``/websocket`` (Moonraker's JSON-RPC socket)."""
    return await _serve(request, _moonraker_handle, _moonraker_push)


def setup(app: web.Application) -> None:
    """Add the WebSocket routes."""
    app.router.add_get("/sockjs/websocket", octoprint_socket)
    app.router.add_get("/websocket", moonraker_socket)
