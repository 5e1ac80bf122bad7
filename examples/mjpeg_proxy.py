"""Re-serve one printer's webcam to browsers, the way a Home Assistant camera entity needs it.

``GET /stream.mjpg``  ``multipart/x-mixed-replace`` built from ``printer.webcam.frames()``
                      (renewed when the relay ends a stream, backing off on 609)
``GET /snapshot.jpg`` one JPEG from ``printer.webcam.snapshot()`` (with its deadline)

Each browser gets its own upstream stream, closed when the browser leaves; shutting the app
down closes every stream and the OctoEverywhere client::

    python examples/mjpeg_proxy.py connection.json [--port 8080] [--max-fps 10]

``connection.json`` holds ``AppConnection.to_dict()``. The App Connection's credentials stay
in this process: browsers never see them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from oe_async import (
    AppConnection,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterConnection,
    ReconnectPolicy,
)

BOUNDARY: Final = "oe-async-frame"
PRINTER: Final = web.AppKey("printer", PrinterConnection)
MAX_FPS: Final = web.AppKey("max_fps", float)


async def stream(request: web.Request) -> web.StreamResponse:
    """MJPEG to one browser until it leaves (or the app shuts down)."""
    printer = request.app[PRINTER]
    resp = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store",
        }
    )
    async with printer.webcam.frames(
        max_fps=request.app[MAX_FPS] or None, reconnect=ReconnectPolicy(max_failures=None)
    ) as frames:
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):  # the browser went away
            async for frame in frames:
                await resp.write(
                    b"--%s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s\r\n"
                    % (BOUNDARY.encode(), frame.content_type.encode(), len(frame.data), frame.data)
                )
    return resp


async def snapshot(request: web.Request) -> web.Response:
    """One JPEG; 503 with a short reason when the printer cannot give one now."""
    try:
        frame = await request.app[PRINTER].webcam.snapshot(timeout=10)
    except OctoEverywhereError as err:
        return web.Response(status=503, text=getattr(err, "message", None) or str(err))
    return web.Response(
        body=frame.data, content_type=frame.content_type, headers={"Cache-Control": "no-store"}
    )


def create_app(
    connection: AppConnection, *, app_id: str = "mjpeg-proxy", max_fps: float = 0.0, **client: Any
) -> web.Application:
    """The proxy app; ``client`` goes to ``OctoEverywhere`` (tests point it at a simulator)."""
    app = web.Application()
    app[MAX_FPS] = max_fps

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with OctoEverywhere(app_id, **client) as oe:
            app[PRINTER] = oe.printer(connection)
            yield
        # Leaving the block closed the client: every open frames() loop has ended.

    app.cleanup_ctx.append(lifespan)
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
    connection = AppConnection.from_dict(json.loads(args.connection.read_text()))
    app = create_app(connection, max_fps=args.max_fps)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(app, host=args.host, port=args.port, shutdown_timeout=2)
    sys.exit(0)


if __name__ == "__main__":
    main()
