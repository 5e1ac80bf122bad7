"""The :class:`Funnel`: one printer connection's request funnel, composed of its parts."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, NoReturn

import aiohttp
import attrs

from oe_async._http import (
    MAX_JSON_SIZE,
    TRANSPORT_ERRORS,
    decode_json,
    display_path,
    read_json,
    read_limited,
    reads_at_once,
)
from oe_async._transport import Pool, Transport
from oe_async.auth import SECRET_HEADERS, redact_url
from oe_async.errors import OctoEverywhereError, UnexpectedResponseError
from oe_async.models import AppConnection, known_secrets
from oe_async.retry import RetryPolicy

from .attempts import Attempts, closed_during, deadline_of, network_error, remaining
from .calls import Call, CallBuilder, Target, printer_headers
from .handshake import WebSocketOptions, open_websocket
from .routes import ProbeAnswer, RouteArgs, Routes


def _label(conn: AppConnection) -> str:
    digest = hashlib.sha256(str(conn.url).encode()).hexdigest()[:6]
    if conn.printer_name:
        name = "".join(ch if ch.isprintable() else "?" for ch in conn.printer_name[:40])
        return f"printer {name!r} ({digest})"
    return f"printer {digest}"


class Funnel(CallBuilder):
    """Sends every request of one printer connection; see :mod:`oe_async._funnel`.

    It builds calls (:meth:`call`, :meth:`plain`, from :class:`CallBuilder`) and sends
    them: :meth:`open`, :meth:`send`, :meth:`json`, :meth:`websocket`. Its parts are
    read-only attributes: :attr:`transport` (the client's session, defaults and tasks),
    :attr:`routes` (LAN or relay, the pins; its ``router`` tells the route now),
    :attr:`app_connection`.

    Args:
        transport: the client's shared session, defaults and task owner.
        app_connection: the App Connection (relay URL and credentials, App API token).
        routing: the LAN URL, the routing policy and the LAN probe's timing, as the app
            gave them to ``OctoEverywhere.printer()`` (checked by :class:`Routes`).
        headers: printer-level headers sent to the printer on the relay and the LAN
            (e.g. ``X-Api-Key``); pinned to those origins like the relay credentials.

    """

    __slots__ = ("_attempts", "label", "routes", "secrets")

    def __init__(
        self,
        transport: Transport,
        app_connection: AppConnection,
        *,
        routing: RouteArgs,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        printer = printer_headers(app_connection, headers)
        #: The connection's own secrets: hidden from every error built from server text.
        self.secrets: Final = known_secrets(
            app_connection, [v for k, v in printer.items() if k.lower() in SECRET_HEADERS]
        )
        #: How log lines name this printer: its name, or a short digest of its URL (the
        #: URL's unique subdomain is a secret; the digest cannot be turned back into it).
        self.label: Final = _label(app_connection)
        #: Where requests to the printer go (LAN or relay) and the secret pins.
        self.routes: Final = Routes(
            transport, app_connection, printer, routing, probe=self._probe_answer, label=self.label
        )
        self._attempts: Final = Attempts(
            transport, self.routes, secrets=self.secrets, label=self.label
        )
        super().__init__(transport, app_connection)  # last: the funnel is whole from here

    def __repr__(self) -> str:
        route = self.routes.router.route.value
        return f"<Funnel {self.label} {redact_url(self.app_connection.url)} route={route}>"

    @property
    def last_error(self) -> dict[str, str] | None:
        """The last failure's class and message (secret-free), for diagnostics."""
        return self._attempts.last_error

    def error_for(self, err: BaseException, method: str, path: str) -> OctoEverywhereError:
        """The library error for a network failure while sending or reading ``method path``.

        :class:`oe_async.ClientClosedError` when the client was closed meanwhile (that is
        why the stream failed), else a :class:`oe_async.CommunicationError` naming the
        failure without the host.
        """
        return network_error(self.transport, err, method, path)

    # ------------------------------------------------------------------ sending

    async def open(self, call: Call) -> aiohttp.ClientResponse:
        """Send ``call`` (with retries) and return the successful response.

        The caller owns the response and must release or close it. Every failure is an
        :class:`oe_async.OctoEverywhereError`; cancellation passes through untouched.
        """
        resp = await self._sent(call)
        transport = self.transport
        transport.pools.release(call.pool)
        transport.owned.track(resp, call.pool)
        return resp

    async def _sent(self, call: Call) -> aiohttp.ClientResponse:
        """Take a slot of the call's pool and send it (with retries); the caller releases it.

        While it waits (for the slot, a connect, the answer's headers, a back-off) a
        :meth:`Transport.close` raises :class:`oe_async.ClientClosedError` here.
        """
        deadline = deadline_of(call)
        owned, pools = self.transport.owned, self.transport.pools
        task = owned.enter_call()
        try:
            waited = not pools.try_acquire(call.pool)
            if waited:
                await pools.acquire(call.pool, wait=remaining(deadline))
            try:
                return await self._attempts.run(call, deadline, waited=waited)
            except BaseException:
                pools.release(call.pool)
                raise
        except asyncio.CancelledError:
            if owned.closed_the_call(task):
                raise closed_during(call.method, call) from None
            raise
        finally:
            owned.leave_call(task)

    @asynccontextmanager
    async def send(self, call: Call) -> AsyncIterator[aiohttp.ClientResponse]:
        """:meth:`open` as a context manager: the response is released however it exits.

        Network failures while the caller reads the body are translated too. An ordinary
        request counts against its connection pool until the response is released.
        """
        # A stream counts as a live stream once open (open() tracks it), not as a request
        # in flight; a request holds its pool slot until the response is released.
        request = call.pool is Pool.REQUESTS
        resp = await (self._sent(call) if request else self.open(call))
        held = self.transport.owned.held
        if request:
            held.add(resp)
        try:
            yield resp
        except TRANSPORT_ERRORS as err:
            self._reraise(err, call, resp)
        finally:
            resp.release()
            if request:
                held.discard(resp)
                self.transport.pools.release(call.pool)

    def _reraise(self, err: BaseException, call: Call, resp: aiohttp.ClientResponse) -> NoReturn:
        """Raise ``err`` as the library error it stands for (it came while reading ``resp``)."""
        if isinstance(err, OctoEverywhereError):
            raise err
        raise self.error_for(err, call.method, display_path(resp.url)) from None

    async def json(self, call: Call) -> Any:
        """Send ``call`` and decode its JSON answer (None for an empty body)."""
        if call.pool is Pool.STREAMS:
            async with self.send(call) as resp:
                return await read_json(resp, call.method)
        # send() spelled out: this is the hot path of every small request.
        total = call.timeout.total
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        transport = self.transport
        owned = transport.owned
        pools = transport.pools
        # owned.enter_call() spelled out (leave_call() below too).
        waiting = owned.waiting
        task: asyncio.Task[Any] | None = asyncio.current_task()
        if task in waiting:
            task = None
        else:
            waiting.add(task)  # type: ignore[arg-type]  # a coroutine always runs in a task
        try:
            waited = not pools.try_acquire(call.pool)
            if waited:
                await pools.acquire(call.pool, wait=remaining(deadline))
            try:
                resp = await self._attempts.run(call, deadline, waited=waited)
                owned.held.add(resp)
                try:
                    if reads_at_once(resp, MAX_JSON_SIZE):  # read_json's common case, in place
                        return decode_json(await resp.read(), resp, call.method)
                    return await read_json(resp, call.method)
                except TRANSPORT_ERRORS as err:
                    self._reraise(err, call, resp)
                finally:
                    resp.release()
                    owned.held.discard(resp)
            finally:
                pools.release(call.pool)
        except asyncio.CancelledError:
            if owned.closed_the_call(task):
                raise closed_during(call.method, call) from None
            raise
        finally:
            if task is not None:
                waiting.discard(task)

    def websocket(
        self, call: Call, options: WebSocketOptions
    ) -> AbstractAsyncContextManager[tuple[aiohttp.ClientWebSocketResponse, str, bool]]:
        """Open a WebSocket for ``call`` (a GET); yield ``(socket, display path, via relay)``.

        The last item says whether the handshake went through the relay (only the relay
        speaks OctoEverywhere's 6xx codes). Pings are left to the caller
        (``autoping=False``): answer them, with a bound.

        The handshake carries the pinned headers by the same origin rule as every request,
        on every redirect hop; a LAN that cannot be reached falls back to the relay. A
        refused handshake raises the mapped error. The socket is closed on exit.
        """
        return open_websocket(self.transport, self.routes, call, options)

    async def _probe_answer(self, target: Target, path: str, read: int) -> ProbeAnswer | None:
        """The answer to ``GET path`` on ``target`` for a LAN probe, None if none came.

        One attempt within the probe timeout, no redirects, no printer secret; the body is
        read up to ``read`` bytes and decoded as JSON (one larger, not JSON or nested too
        deeply counts as none).
        """
        options = self.routes.router.options
        call = attrs.evolve(
            self.call(
                "GET",
                path,
                target=target,
                timeout=aiohttp.ClientTimeout(total=options.probe_timeout),
                retry=RetryPolicy.never(),
                allow_redirects=False,
                raise_for_status=False,
            ),
            probe=True,  # no printer secret to a device that may not be the printer
        )
        try:
            async with self.send(call) as resp:
                document = None
                if read:
                    try:
                        body = await read_limited(resp, read, what="a LAN probe's answer")
                        document = decode_json(body, resp, "GET")
                    except UnexpectedResponseError:
                        pass  # too large, a chunk flood, not JSON: not the answer looked for
                return ProbeAnswer(resp.status, resp.content_type, document)
        except OctoEverywhereError:
            return None
