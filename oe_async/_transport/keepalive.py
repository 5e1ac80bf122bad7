"""Kept-alive connections: the owned sessions' connector and what it knows of idle ones.

:class:`QuietConnector` never sends on a pooled connection that heard something while idle
(a stray answer, the server's close not yet read); :class:`KeptAlive` is the state both
owned sessions share: when each connection was last handed out, and the ``max_idle`` cap
(least recently used closed first). See docs/architecture.md, "Kept-alive connections".
"""

from __future__ import annotations

import collections
import functools
import logging
import select
import time
from typing import Any, Final

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection

from oe_async.retry import IDEMPOTENT_METHODS

_LOGGER = logging.getLogger("oe_async")


class QuietConnector(aiohttp.TCPConnector):
    """A connector that never sends on a pooled connection which heard something while idle.

    aiohttp hands a kept-alive connection to the next request even when bytes arrived on
    it while it sat in the pool: an unsolicited response (a stray ``408`` from a proxy or a
    server timing the connection out) is then read as the next request's answer, and every
    later answer on that connection is off by one. Such a connection reports
    ``should_close`` (it holds buffered data); drop it and take another.

    Nor does it send on a pooled connection the server has closed when the event loop has
    not read the close yet (a busy loop, or the close arriving just now): see
    :class:`KeptAlive`. The request then goes out on another connection, and nothing of it
    was sent on the dead one, so this is safe for any method. Public API only: ``connect()``,
    ``Connection.protocol`` and ``add_callback()``, ``ResponseHandler.should_close``,
    ``is_connected()`` and ``close()``, the transport's ``socket`` extra.
    """

    def __init__(self, kept_alive: KeptAlive, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kept_alive = kept_alive

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        """A pooled connection with nothing unread on it, or a new one."""
        kept_alive = self._kept_alive
        for _ in range(_MAX_STALE):
            conn = await super().connect(req, traces, timeout)
            protocol = conn.protocol
            if protocol is None:
                return conn
            if protocol.should_close:
                _LOGGER.debug("dropping a pooled connection that received data while idle")
            elif kept_alive.usable(conn, protocol, req.method):
                return conn
            else:
                _LOGGER.debug("dropping a pooled connection that the server has closed")
            conn.close()
        conn = await super().connect(req, traces, timeout)
        if conn.protocol is not None:
            kept_alive.track(conn, conn.protocol)
        return conn


#: Idle connections with stray data dropped before one connect() gives up looking.
_MAX_STALE: Final = 8
#: A connection handed out again after this many seconds is looked at before use, whatever
#: the method (sooner, only for methods aiohttp does not re-send on a dropped connection).
_LOOK_AFTER: Final = 1.0
#: Connections remembered before the first sweep of closed ones (then twice the live ones).
_SWEEP_MIN: Final = 256
_monotonic: Final = time.monotonic
#: ``select.poll`` (none on Windows: there the look is skipped, aiohttp's own check stays).
_POLL: Final[Any] = getattr(select, "poll", None)


class KeptAlive:
    """What the owned sessions' connectors know of their kept-alive connections.

    **Stale connections.** A server closes an idle connection on its own schedule; aiohttp
    skips a pooled connection once the event loop has read the close, but on a busy loop,
    or when the close arrives just before a request, it sends on it. The server never
    reads that request; the client sees ``ServerDisconnectedError``, and only an idempotent
    request is re-sent (by aiohttp, once). So a connection is looked at before it is handed
    out again: after :data:`_LOOK_AFTER` seconds, and always for a method that would not be
    re-sent. A zero-timeout ``poll()`` of its socket (no wait, no read) shows whether the
    server's close (or anything else) has arrived unread; then it is dropped before a byte
    is written, and the request takes another connection. A close still on the wire when
    the request leaves cannot be seen: an idempotent request is then re-sent by aiohttp,
    and any other fails, as it may have reached the server.

    **The idle cap.** With ``max_idle``, connections released to the pools are remembered
    in the order they were released; past ``max_idle`` the least recently used is closed
    (a closed connection left in aiohttp's pool is skipped and dropped by aiohttp). The
    cap is an upper bound: a connection that the server or aiohttp closed counts until it
    is the oldest.
    """

    __slots__ = ("_handed_out", "_idle", "_max_idle", "_sweep_at")

    def __init__(self, max_idle: int | None) -> None:
        #: When each connection was last handed out: a new one is not looked at (the TLS
        #: session tickets a server sends after the handshake may still be unread).
        self._handed_out: dict[ResponseHandler, float] = {}
        self._idle: collections.OrderedDict[ResponseHandler, None] | None = (
            None if max_idle is None else collections.OrderedDict()
        )
        self._max_idle = max_idle or 0
        self._sweep_at = _SWEEP_MIN

    def usable(self, conn: Connection, protocol: ResponseHandler, method: str) -> bool:
        """Whether ``conn`` may carry a ``method`` request now; if so it is in use from now.

        On the path of every request: one clock read and two dict operations unless the
        connection is looked at (and, with a cap, the release callback).
        """
        now = _monotonic()
        handed_out = self._handed_out
        last = handed_out.get(protocol)
        handed_out[protocol] = now
        if last is not None:
            if (now - last >= _LOOK_AFTER or method not in IDEMPOTENT_METHODS) and _unread_close(
                protocol
            ):
                del handed_out[protocol]
                return False
        elif len(handed_out) > self._sweep_at:
            self._sweep()
        if self._idle is not None:
            self.track(conn, protocol)
        return True

    def track(self, conn: Connection, protocol: ResponseHandler) -> None:
        """``conn`` is in use: with a cap, note when it goes back to the pool."""
        idle = self._idle
        if idle is not None:
            idle.pop(protocol, None)
            conn.add_callback(functools.partial(self._released, protocol))

    def _released(self, protocol: ResponseHandler) -> None:
        idle = self._idle
        if idle is None or protocol.should_close:
            return  # aiohttp closes it: it never becomes idle
        idle[protocol] = None
        while len(idle) > self._max_idle:
            oldest, _ = idle.popitem(last=False)
            if oldest.is_connected():
                _LOGGER.debug(
                    "closing the least recently used idle connection (max_idle=%d)",
                    self._max_idle,
                )
                oldest.close()

    def _sweep(self) -> None:
        """Forget closed connections (amortised: the threshold doubles with the live ones)."""
        handed_out = self._handed_out
        for protocol in [p for p in handed_out if not p.is_connected()]:
            del handed_out[protocol]
        self._sweep_at = max(_SWEEP_MIN, 2 * len(handed_out))


def _unread_close(protocol: ResponseHandler) -> bool:
    """Whether an idle connection is closed, or its socket holds bytes the loop has not read.

    On an idle connection that is the server's close (end of stream, a reset, a TLS
    ``close_notify``) or an answer nobody asked for: either way it must not carry a request.
    """
    transport = protocol.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or _POLL is None:
        return False
    poller = _POLL()
    try:
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
