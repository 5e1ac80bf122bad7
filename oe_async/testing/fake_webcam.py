"""The fake printer's webcams: MJPEG streams and snapshots, its own and the plugin's."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

from aiohttp import web

from oe_async.mjpeg import transform_header
from oe_async.testing._core import (
    UNKNOWN_COMMAND,
    SimulatorCore,
    plugin_json,
    relay_status,
    simulator_of,
)
from oe_async.testing.mjpeg_source import (
    QUIRKS,
    build_part,
    closing,
    content_type,
)

TRANSFORM_HEADER = "x-oe-webcam-transform"


def _quirks(request: web.Request) -> frozenset[str] | web.Response:
    sim = simulator_of(request)
    extra = frozenset(q for q in request.query.get("quirks", "").split(",") if q)
    unknown = extra - QUIRKS
    if unknown:
        return web.json_response({"error": f"unknown quirks {sorted(unknown)}"}, status=400)
    return sim.state.webcam.quirks | extra


def _frames(request: web.Request) -> list[bytes]:
    sim = simulator_of(request)
    return [sim.large_jpeg] if sim.state.webcam.large else sim.jpegs


def _part(sim: SimulatorCore, frames: list[bytes], quirks: frozenset[str], number: int) -> bytes:
    """The bytes of part ``number``; cached unless they carry a timestamp."""
    frame = frames[number % len(frames)]
    if "timestamp" in quirks:
        return build_part(frame, quirks, number=number, timestamp=time.time())
    key = (number % len(frames), len(frame), quirks, number == 0)
    cache = sim.webcam_part_cache
    part = cache.get(key)
    if part is None:
        part = cache[key] = build_part(frame, quirks, number=number, timestamp=0.0)
    return part


def _transform(request: web.Request, index: int | None) -> str | None:
    """The ``x-oe-webcam-transform`` to send: the override, or the plugin's for ``index``.

    The plugin adds the header (``none``, or ``fliph flipv rotate=<deg>``) to its own
    webcam endpoints, from the settings ``webcam/list`` reports for the same camera; a
    printer's own MJPEG URL relayed as is carries none.
    """
    settings = simulator_of(request).state.webcam
    if settings.transform is not None:
        return settings.transform
    if index is None:
        return None
    camera = settings.webcams[index]
    return transform_header(
        flip_h=bool(camera.get("FlipH")),
        flip_v=bool(camera.get("FlipV")),
        rotation=int(camera.get("Rotation") or 0),  # type: ignore[call-overload]
    )


def _rate_limited(request: web.Request) -> web.Response | None:
    """609 when streams are opened too often (the relay's webcam limit)."""
    sim = simulator_of(request)
    settings = sim.state.webcam
    now = time.monotonic()
    opens: collections.deque[float] = sim.webcam_opens
    while opens and now - opens[0] > settings.window_seconds:
        opens.popleft()
    opens.append(now)
    if settings.max_opens is not None and len(opens) > settings.max_opens:
        response = relay_status(609)
        if settings.retry_after is not None:
            response.headers["Retry-After"] = str(settings.retry_after)
        return response
    return None


async def stream(request: web.Request, index: int | None = None) -> web.StreamResponse:
    """An MJPEG stream that ends after the stream time limit (or a frame count)."""
    sim = simulator_of(request)
    quirks = _quirks(request)
    if isinstance(quirks, web.Response):
        return quirks
    refusal = _rate_limited(request)
    if refusal is not None:
        return refusal
    resp = web.StreamResponse(
        headers={"Content-Type": content_type(quirks), "Cache-Control": "no-store"}
    )
    transform = _transform(request, index)
    if transform is not None:
        resp.headers[TRANSFORM_HEADER] = transform
    await resp.prepare(request)
    sim.webcam_streams += 1
    sim.webcam_streams_open += 1
    try:
        await _send_frames(request, resp, quirks)
    finally:
        sim.webcam_streams_open -= 1
    return resp


async def _send_frames(
    request: web.Request, resp: web.StreamResponse, quirks: frozenset[str]
) -> None:
    sim = simulator_of(request)
    settings = sim.state.webcam
    frames = _frames(request)
    seconds = settings.stream_seconds
    if seconds is None:
        seconds = sim.state.limits.max_webcam_stream_seconds
    loop = asyncio.get_running_loop()
    started = loop.time()
    number = 0
    with contextlib.suppress(ConnectionError):
        while settings.frames_per_stream is None or number < settings.frames_per_stream:
            if seconds is not None and loop.time() - started >= seconds:
                break
            part = _part(sim, frames, quirks, number)
            if "tiny_chunks" in quirks:
                for i in range(len(part)):  # one HTTP chunk per byte
                    await resp.write(part[i : i + 1])
            else:
                await resp.write(part)
            number += 1
            if settings.fps > 0:
                # Keep the rate steady rather than sleeping a fixed time after each write.
                if not await _pause(request, started + number / settings.fps):
                    break  # the client left
            else:
                await asyncio.sleep(0)
        if "close" in quirks:
            await resp.write(closing(quirks))
        await resp.write_eof()


#: How often a stream waiting for its next frame looks whether its client is still there.
_CLIENT_CHECK = 0.1


async def _pause(request: web.Request, until: float) -> bool:
    """Wait until loop time ``until``; False as soon as the client has closed the connection.

    aiohttp.web lets a handler run on after its client left, until its next write: a slow
    camera (one frame a minute) would keep serving a stream nobody reads for a minute.
    """
    loop = asyncio.get_running_loop()
    while (delay := until - loop.time()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(delay, _CLIENT_CHECK))
    return True


async def snapshot(request: web.Request, index: int | None = None) -> web.StreamResponse:
    """One JPEG."""
    sim = simulator_of(request)
    resp = web.Response(
        body=_frames(request)[sim.webcam_streams % len(_frames(request))], content_type="image/jpeg"
    )
    transform = _transform(request, index)
    if transform is not None:
        resp.headers[TRANSFORM_HEADER] = transform
    return resp


async def octoprint_webcam(request: web.Request) -> web.StreamResponse:
    """``GET /webcam/?action=stream|snapshot`` (mjpg-streamer style)."""
    action = request.query.get("action")
    if action == "stream":
        return await stream(request)
    if action == "snapshot":
        return await snapshot(request)
    return web.Response(status=404, text="unknown action")


def _plugin_camera(request: web.Request, kind: str) -> int | web.Response:
    """The camera a plugin webcam request is for, as the real plugin picks it.

    No ``index``: the default camera. An index out of range: camera 0 (the plugin falls
    back rather than fail). No camera, or none that can serve ``kind``: the plugin's
    answer to a command it could not handle, HTTP 200 with ``{"Status": 754}``.
    """
    sim = simulator_of(request)
    webcams = sim.state.webcam.webcams
    try:
        index: int | None = int(request.query["index"])
    except (KeyError, ValueError):
        index = None
    if index is None:
        index = sim.state.webcam.default_index
    if not 0 <= index < len(webcams):
        index = 0
    camera = webcams[index] if webcams else None
    usable = camera is not None and (
        camera.get("StreamUrl") or (kind == "snapshot" and camera.get("SnapshotUrl"))
    )
    if not usable:
        return plugin_json({"Status": 754, "Error": UNKNOWN_COMMAND})
    return index


async def plugin_stream(request: web.Request) -> web.StreamResponse:
    """``/octoeverywhere-command-api/webcam/stream[?index=N]`` (any method)."""
    index = _plugin_camera(request, "stream")
    return index if isinstance(index, web.Response) else await stream(request, index)


async def plugin_snapshot(request: web.Request) -> web.StreamResponse:
    """``/octoeverywhere-command-api/webcam/snapshot[?index=N]`` (any method)."""
    index = _plugin_camera(request, "snapshot")
    return index if isinstance(index, web.Response) else await snapshot(request, index)


def setup(app: web.Application) -> None:
    """Add the webcam routes to the relay application (the list is a plugin command)."""
    app.router.add_get("/webcam/", octoprint_webcam)
    app.router.add_route("*", "/octoeverywhere-command-api/webcam/stream", plugin_stream)
    app.router.add_route("*", "/octoeverywhere-command-api/webcam/snapshot", plugin_snapshot)
