"""WebSocket handshakes through the funnel: the same pins, routes and pool as every request.

``ws_connect`` takes no per-request middlewares, so the handshake sessions carry one that
applies :data:`oe_async._transport.HANDSHAKE_AUTH`, set here for the handshake in progress:
the relay credentials and printer headers then go to their origins only, on every redirect
hop. A LAN that cannot be reached falls back to the relay; a refused handshake raises the
mapped error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
import attrs

from oe_async._http import TRANSPORT_ERRORS
from oe_async._transport import HANDSHAKE_AUTH, Pool, Transport
from oe_async.errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterHTTPError,
    http_error,
    is_relay_status,
)
from oe_async.routing import Route

from .attempts import closed_during, network_error
from .calls import Call
from .routes import Routes


@attrs.frozen(kw_only=True)
class WebSocketOptions:
    """How a WebSocket is opened (see ``printer.websocket.connect``)."""

    #: Sub-protocols to offer.
    protocols: tuple[str, ...] = ()
    #: Seconds between aiohttp's pings (None: none).
    heartbeat: float | None = None
    #: aiohttp's own bound on each receive (None: the caller applies one).
    receive_timeout: float | None = None
    #: Seconds for the whole handshake, the wait for a stream slot included.
    handshake_timeout: float = 30.0
    #: The largest message accepted, in bytes.
    max_msg_size: int = 4 * 1024 * 1024


@asynccontextmanager
async def open_websocket(
    transport: Transport, routes: Routes, call: Call, options: WebSocketOptions
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, str, bool]]:
    """Open a WebSocket for ``call`` (a GET); yield ``(socket, display path, via relay)``.

    The last item says whether the handshake went through the relay (only the relay
    speaks OctoEverywhere's 6xx codes). Pings are left to the caller
    (``autoping=False``): answer them, with a bound. The socket is closed on exit.
    """
    wait = options.handshake_timeout
    if not wait > 0:
        raise InvalidArgumentError("handshake_timeout must be a positive number of seconds")
    owned = transport.owned
    task = owned.enter_call()
    try:
        async with transport.pools.slot(Pool.STREAMS, wait=wait):
            ws, path, route = await _handshake(transport, routes, call, options)
            owned.track(ws)
    except asyncio.CancelledError:
        if owned.closed_the_call(task):
            raise closed_during("WebSocket", call) from None
        raise
    finally:
        owned.leave_call(task)
    try:
        yield ws, path, route is Route.RELAY
    finally:
        with contextlib.suppress(*TRANSPORT_ERRORS):
            await ws.close()


async def _handshake(
    transport: Transport, routes: Routes, call: Call, options: WebSocketOptions
) -> tuple[aiohttp.ClientWebSocketResponse, str, Route | None]:
    """One WebSocket handshake (LAN falling back to the relay), errors translated.

    Every error is raised *outside* the ``except`` block that caught aiohttp's: its
    exceptions record the request headers (relay ``Authorization``, ``X-Api-Key``), and
    one raised inside the block would keep them reachable as ``__context__``.
    """
    while True:
        route = await routes.of(call)
        send = routes.send_for(call, route)
        url, path = send.url, send.path
        error: OctoEverywhereError | None = None
        token = HANDSHAKE_AUTH.set(send.auth)
        try:
            async with asyncio.timeout(options.handshake_timeout):
                ws = await transport.handshake_session().ws_connect(
                    url,
                    protocols=options.protocols,
                    heartbeat=options.heartbeat,
                    timeout=aiohttp.ClientWSTimeout(
                        ws_receive=options.receive_timeout, ws_close=10.0
                    ),
                    headers=send.headers,
                    max_msg_size=options.max_msg_size,
                    # PrinterWebSocket answers pings itself, with a bound on how many
                    # (aiohttp would answer a flood of them for ever, on the loop).
                    autoping=False,
                )
        except aiohttp.WSServerHandshakeError as err:
            error = _refused(transport, err.status, err.headers, path, route)
        except TRANSPORT_ERRORS as err:
            if not transport.closed and routes.lan_failed(route, call):
                continue  # the handshake did not happen: try the relay
            error = network_error(transport, err, "WebSocket", path)
        finally:
            HANDSHAKE_AUTH.reset(token)
        if error is not None:
            raise error
        return ws, path, route


def _refused(
    transport: Transport,
    status: int,
    headers: Mapping[str, str] | None,
    path: str,
    route: Route | None,
) -> OctoEverywhereError:
    if status < 400:
        return CommunicationError(
            f"WebSocket {path}: the server did not accept the upgrade (HTTP {status})"
        )
    if route is Route.LAN and is_relay_status(status):
        # 6xx means OctoEverywhere only when the relay says it (see Attempts.run).
        return PrinterHTTPError(status, method="GET", path=path)
    return http_error(status, headers or {}, b"", app_id=transport.app_id, method="GET", path=path)
