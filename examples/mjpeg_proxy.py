"""Re-serve one printer's webcam to browsers, the way a Home Assistant camera entity needs it.

``GET /``             a page showing the stream (open it in a browser)
``GET /stream.mjpg``  ``multipart/x-mixed-replace`` from one shared ``printer.webcam.frames()``
``GET /snapshot.jpg`` one JPEG from ``printer.webcam.snapshot()`` (with its deadline)

Every viewer shares ONE upstream stream (``frames(shared=True)``): 20 browser tabs cost the
OctoEverywhere account one webcam stream, not 20. The stream opens for the first viewer,
renews itself when the relay ends it and backs off on 609; it closes 2 s after the last
viewer left (a page reload reuses it). For browsers, each picture is followed at once by
the next part's headers, so it shows as soon as it arrives (Chromium shows a part only once
the next one begins), and a viewer that leaves is noticed at once (the app cancels the
handler of a closed connection), however slow the camera. A camera that cannot stream
answers an HTTP error with the reason before any multipart header, and logs one line.
Shutting the app down closes the OctoEverywhere client, which ends every stream::

    python examples/mjpeg_proxy.py connection.json [--port 8080] [--max-fps 10]

``connection.json`` holds ``AppConnection.to_dict()``. The App Connection's credentials stay
in this process: browsers never see them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from oe_async import (
    AppConnection,
    ClientClosedError,
    Frame,
    FrameStream,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterConnection,
    ReconnectPolicy,
)

_LOGGER = logging.getLogger("mjpeg_proxy")

BOUNDARY: Final = b"oe-async-frame"
PRINTER: Final = web.AppKey("printer", PrinterConnection)
MAX_FPS: Final = web.AppKey("max_fps", float)
LINGER_SECONDS: Final = web.AppKey("linger", float)
#: How long a new viewer waits for the camera's first picture before it gets a 503.
FIRST_FRAME_WAIT: Final = 10.0
#: The shared stream stays this long after the last viewer left: a reload reuses it.
LINGER: Final = 2.0
#: Renew forever, backing off on 609 and failures: viewers just see a long response.
RECONNECT: Final = ReconnectPolicy(max_failures=None)
PAGE: Final = """<!doctype html>
<html><head><meta charset="utf-8"><title>Webcam</title></head>
<body style="margin:0;background:#000">
<img id="webcam" src="stream.mjpg" alt="webcam" style="max-width:100%">
</body></html>
"""


def part_head(content_type: str) -> bytes:
    """A boundary line and part headers (no Content-Length: browsers look for the boundary)."""
    return b"--%s\r\nContent-Type: %s\r\n\r\n" % (BOUNDARY, content_type.encode())


def picture(frame: Frame) -> bytes:
    """A JPEG, then the next part's boundary and headers.

    Chromium shows a part once the next part's headers have arrived: sending them right
    after the picture (rather than with the next picture) shows every picture as soon as it
    arrives, not one frame late (4 s late for a camera at 0.25 fps).
    """
    return frame.data + b"\r\n" + part_head(frame.content_type)


def unavailable(reason: str, retry_after: float | None = None) -> web.Response:
    """503 with a one-line reason (no multipart header was sent yet)."""
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.Response(status=503, text=reason, headers=headers)


async def first_frame(frames: FrameStream) -> Frame | web.Response:
    """The camera's first picture, or the HTTP error that says why there is none."""
    try:
        async with asyncio.timeout(FIRST_FRAME_WAIT):
            return await anext(frames)
    except TimeoutError:
        reason = frames.last_error.message if frames.last_error else "no picture in time"
        resume_at = frames.resume_at
        _LOGGER.info("webcam: no picture for a viewer within %.0f s: %s", FIRST_FRAME_WAIT, reason)
        return unavailable(
            f"The webcam sent no picture within {FIRST_FRAME_WAIT:.0f} s: {reason}",
            resume_at - time.monotonic() if resume_at is not None else None,
        )
    except StopAsyncIteration:
        _LOGGER.info("webcam: the stream ended before its first picture")
        return unavailable("The webcam stream ended before its first picture.")
    except OctoEverywhereError as err:  # revoked, offline, webcam limit...
        _LOGGER.warning("webcam unavailable: %s", err.message)
        return unavailable(err.message, err.retry_after)


async def stream(request: web.Request) -> web.StreamResponse:
    """MJPEG to one browser until it leaves (or the app shuts down)."""
    printer = request.app[PRINTER]
    async with printer.webcam.frames(
        max_fps=request.app[MAX_FPS] or None,
        reconnect=RECONNECT,
        shared=True,
        linger=request.app[LINGER_SECONDS],
    ) as frames:
        first = await first_frame(frames)
        if isinstance(first, web.Response):
            return first
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}",
                "Cache-Control": "no-store",
            }
        )
        await resp.prepare(request)
        try:
            await resp.write(part_head(first.content_type) + picture(first))
            async for frame in frames:
                await resp.write(picture(frame))
        except ConnectionError:
            pass  # the viewer left (aiohttp's ClientConnectionResetError is one)
        except ClientClosedError:
            pass  # the app is shutting down
        except OctoEverywhereError as err:  # revoked mid-stream...: the body just ends
            _LOGGER.warning("webcam stream ended: %s", err.message)
    return resp


async def snapshot(request: web.Request) -> web.Response:
    """One JPEG; 503 with a short reason when the printer cannot give one now."""
    try:
        frame = await request.app[PRINTER].webcam.snapshot(timeout=10)
    except OctoEverywhereError as err:
        _LOGGER.info("webcam snapshot unavailable: %s", err.message)
        return unavailable(err.message, err.retry_after)
    return web.Response(
        body=frame.data, content_type=frame.content_type, headers={"Cache-Control": "no-store"}
    )


async def page(request: web.Request) -> web.Response:
    """A page with the stream in an ``<img>``."""
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


def create_app(
    connection: AppConnection,
    *,
    app_id: str = "mjpeg-proxy",
    max_fps: float = 0.0,
    linger: float = LINGER,
    **client: Any,
) -> web.Application:
    """The proxy app; ``client`` goes to ``OctoEverywhere`` (tests point it at a simulator)."""
    # aiohttp.web lets a handler run on after its client left (until it next writes): with
    # a camera at 0.1 fps that kept a left viewer's stream 10 s. Cancelling the handler when
    # the connection closes (however the app is run) ends the viewer's share at once.
    app = web.Application(handler_args={"handler_cancellation": True})
    app[MAX_FPS] = max_fps
    app[LINGER_SECONDS] = linger

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with OctoEverywhere(app_id, **client) as oe:
            app[PRINTER] = oe.printer(connection)
            yield
        # Leaving the block closed the client: every stream has ended.

    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/", page)
    app.router.add_get("/stream.mjpg", stream)
    app.router.add_get("/snapshot.jpg", snapshot)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("connection", type=Path, help="a JSON file with AppConnection.to_dict()")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-fps", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    connection = AppConnection.from_dict(json.loads(args.connection.read_text()))
    app = create_app(connection, max_fps=args.max_fps)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(app, host=args.host, port=args.port, shutdown_timeout=2)
    sys.exit(0)


if __name__ == "__main__":
    main()
