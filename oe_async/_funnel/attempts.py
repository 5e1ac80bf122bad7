"""The attempts of one call: send, follow, retry within the deadline, translate failures.

:class:`Attempts` sends a :class:`oe_async._funnel.calls.Call` on the route
:class:`oe_async._funnel.routes.Routes` picks, until it succeeds or may not be sent again
(:class:`oe_async.RetryPolicy`, the call's deadline), and turns every failure into an
:class:`oe_async.OctoEverywhereError`: 6xx through ``errors.http_error``, network errors
through ``_http.transport_error`` (without the host). ``CancelledError`` passes through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
import attrs
from yarl import URL

from oe_async._http import TRANSPORT_ERRORS, display_path, read_capped, transport_error
from oe_async._redact import KnownSecrets
from oe_async._transport import Pool, Transport
from oe_async.errors import (
    MAX_ERROR_BODY,
    ClientClosedError,
    OctoEverywhereError,
    PrinterHTTPError,
    RequestTimeoutError,
    http_error,
    is_relay_status,
    parse_retry_after,
)
from oe_async.retry import RetryPolicy
from oe_async.routing import Route

from .calls import MISSING, Call, Send, Target
from .routes import CHOOSE, Routes

_LOGGER = logging.getLogger("oe_async")

#: Statuses aiohttp follows as redirects.
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: Failures that prove the request never reached the server.
_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def deadline_of(call: Call) -> float | None:
    """The loop time by which ``call`` must be done (its total timeout), or None."""
    total = call.timeout.total
    return None if total is None else asyncio.get_running_loop().time() + total


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline)."""
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


def network_error(
    transport: Transport, err: BaseException, method: str, path: str
) -> OctoEverywhereError:
    """The library error for a network failure while sending or reading ``method path``.

    :class:`oe_async.ClientClosedError` when the client was closed meanwhile (that is
    why it failed), else a :class:`oe_async.CommunicationError` naming the failure
    without the host.
    """
    if transport.closed:
        return ClientClosedError(f"{method} {path}: the OctoEverywhere client was closed")
    return transport_error(err, method, path)


def closed_during(method: str, call: Call) -> ClientClosedError:
    """The error of a call that close() interrupted while it waited."""
    try:
        path = display_path(call.path if isinstance(call.path, URL) else URL(call.path))
    except ValueError:
        path = "(path)"
    return ClientClosedError(f"{method} {path}: the OctoEverywhere client was closed")


class Attempts:
    """Sends calls of one printer connection, attempt after attempt; see the module docstring.

    Args:
        transport: the client's shared session, defaults and task owner.
        routes: the connection's routes and pins.
        secrets: the connection's own secrets, hidden from every error built from server text.
        label: how log lines name the printer.

    """

    __slots__ = ("_label", "_routes", "_secrets", "_transport", "last_error")

    def __init__(
        self, transport: Transport, routes: Routes, *, secrets: KnownSecrets, label: str
    ) -> None:
        self._transport = transport
        self._routes = routes
        self._secrets = secrets
        self._label = label
        #: The last failure's class and message (secret-free), for diagnostics.
        self.last_error: dict[str, str] | None = None

    async def run(
        self, call: Call, deadline: float | None, *, waited: bool = False
    ) -> aiohttp.ClientResponse:
        """Send ``call`` until it succeeds or may not be retried; return the response.

        Each attempt goes straight to its URL when that is safe, else through the auth
        middleware. The middleware pins secrets on every redirect hop, but a per-request
        middleware costs aiohttp about 20 us per request, an eighth of a small GET. The
        first hop always goes to one of the connection's own origins, whose pinned headers
        are known: a request that cannot be redirected (``allow_redirects=False``), or a
        GET/HEAD (whose redirects keep the method and carry no body), goes out with them
        set directly and no middleware (:attr:`Send.direct`). A redirect answer is then
        followed from its ``Location`` through the middleware (:meth:`_follow`). Session
        default headers or per-request headers that carry a secret name always take the
        middleware path (it strips them where they do not belong).

        The caller holds a slot of the call's pool and tracks the response
        (:meth:`Owned.track`, or :attr:`Owned.held` when it releases the response
        itself). ``waited``: the call waited for a free connection first, so its first
        attempt too gets only what is left of the deadline.
        """
        transport = self._transport
        routes = self._routes
        loop = asyncio.get_running_loop()
        attempt = 0
        # The first send has the call's whole timeout (unless the pool wait took some of it),
        # later ones what is left.
        sent = waited
        while True:
            attempt += 1
            # Asked again for every send: a client closed meanwhile (say during a retry's
            # back-off) raises ClientClosedError here, instead of sending on.
            session = transport.session if call.pool is Pool.REQUESTS else transport.stream_session
            route = routes.now(call)
            if route is CHOOSE:
                route = await routes.choose()
            send = routes.send_for(call, route)
            data = call.data() if callable(call.data) else call.data
            json_body = None if call.json is MISSING else call.json
            timeout = self._retry_timeout(call, deadline) if sent else send.timeout
            sent = True
            started = loop.time()
            try:
                direct = send.direct
                if direct is not None and _session_has_secrets(session, send):
                    direct = None
                resp = await session.request(
                    call.method,
                    send.url,
                    params=call.params,
                    data=data,
                    json=json_body,
                    headers=send.headers if direct is None else direct,
                    timeout=timeout,
                    allow_redirects=call.allow_redirects and direct is None,
                    raise_for_status=False,
                    middlewares=(send.auth,) if direct is None else (),
                )
                if direct is not None and call.allow_redirects and resp.status in _REDIRECTS:
                    resp = await _follow(session, call, resp, send, timeout=timeout, json=json_body)
            except TRANSPORT_ERRORS as err:
                error: OctoEverywhereError = transport.pools.pool_full_error(
                    call.pool, err, loop.time() - started
                ) or network_error(transport, err, call.method, send.path)
                # A request that never left can always go through the relay instead; one
                # that may have reached the printer only if it may be repeated.
                if (
                    not transport.closed
                    and routes.lan_failed(route, call)
                    and (isinstance(err, _NEVER_SENT) or call.retryable)
                ):
                    _LOGGER.debug(
                        "%s: %s %s: LAN unreachable, using the relay",
                        self._label,
                        call.method,
                        send.path,
                    )
                    attempt -= 1
                    continue
            else:
                status = resp.status
                if route is Route.LAN and not call.probe:  # a probe's answer is no request's
                    routes.lan_answered(status)
                # OctoEverywhere's 6xx codes mean something only from the relay and the
                # App API: on the plain-http LAN they are any device's ordinary answer.
                if status < 400 or not (
                    call.raise_for_status or (route is not Route.LAN and is_relay_status(status))
                ):
                    if _LOGGER.isEnabledFor(logging.DEBUG):  # no call to debug() if not
                        _LOGGER.debug(
                            "%s: %s %s -> %d", self._label, call.method, send.path, status
                        )
                    return resp
                try:
                    body = await read_capped(resp, MAX_ERROR_BODY)
                finally:
                    resp.release()
                error = self._http_error(resp, body, call, send.path, relay=route is not Route.LAN)
            await self._before_retry(call, deadline, attempt, error, send.path)

    def _retry_timeout(self, call: Call, deadline: float | None) -> aiohttp.ClientTimeout:
        """A later attempt's timeout: what is left of the call's deadline, pool wait bounded."""
        timeout = call.timeout
        if deadline is not None:
            left = deadline - asyncio.get_running_loop().time()
            timeout = attrs.evolve(timeout, total=max(left, 0.001))
        return self._transport.pools.with_pool_wait(timeout)

    async def _before_retry(
        self,
        call: Call,
        deadline: float | None,
        attempt: int,
        error: OctoEverywhereError,
        path: str,
    ) -> None:
        """Wait before attempt ``attempt + 1`` of ``call``, or raise ``error`` if none is due."""
        delay = (
            call.retry.delay(attempt, error)
            if call.retryable
            and not isinstance(error, ClientClosedError)
            and attempt < call.retry.attempts
            and RetryPolicy.is_retryable_error(error)
            else None
        )
        left = remaining(deadline)
        if delay is not None and left is not None and delay >= left:
            _LOGGER.debug(
                "%s: %s %s: no time left for attempt %d (%.2f s left)",
                self._label,
                call.method,
                path,
                attempt + 1,
                left,
            )
            delay = None
        if delay is None:
            _LOGGER.debug("%s: %s %s failed: %s", self._label, call.method, path, error)
            self.last_error = {"type": type(error).__name__, "message": str(error)}
            if attempt > 1 and isinstance(error, RequestTimeoutError) and deadline is not None:
                error = RequestTimeoutError(
                    f"{call.method} {path}: no answer within the call's "
                    f"{call.timeout.total:g} s deadline ({attempt} attempts)"
                )
            raise error from None
        _LOGGER.debug(
            "%s: %s %s failed (%s); attempt %d of %d in %.2f s",
            self._label,
            call.method,
            path,
            type(error).__name__,
            attempt + 1,
            call.retry.attempts,
            delay,
        )
        await asyncio.sleep(delay)

    def _http_error(
        self,
        resp: aiohttp.ClientResponse,
        body: bytes,
        call: Call,
        path: str,
        *,
        relay: bool,
    ) -> OctoEverywhereError:
        if not relay and is_relay_status(resp.status):
            return PrinterHTTPError(
                resp.status,
                reason=resp.reason or "",
                method=call.method,
                path=path,
                body=body,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                secrets=self._secrets,
            )
        return http_error(
            resp.status,
            resp.headers,
            body,
            app_id=self._transport.app_id,
            method=call.method,
            path=path,
            printer=call.target is not Target.APP_API,
            secrets=self._secrets,
        )


async def _follow(
    session: aiohttp.ClientSession,
    call: Call,
    resp: aiohttp.ClientResponse,
    send: Send,
    *,
    timeout: aiohttp.ClientTimeout,
    json: Any,
) -> aiohttp.ClientResponse:
    """Follow the redirect ``resp`` of a direct GET/HEAD through the auth middleware."""
    location = resp.headers.get("Location")
    if location is None:
        return resp
    try:
        target: URL | None = resp.url.join(URL(location))
    except ValueError:
        target = None
    resp.release()
    url, params = send.url, call.params
    if target is not None and target.scheme in ("http", "https"):
        url, params = target, None  # the query is the Location's now
    return await session.request(
        call.method,
        url,
        params=params,
        data=call.data() if callable(call.data) else call.data,
        json=json,
        headers=send.headers,
        timeout=timeout,
        allow_redirects=True,
        raise_for_status=False,
        middlewares=(send.auth,),
    )


def _session_has_secrets(session: aiohttp.ClientSession, send: Send) -> bool:
    """True when the session adds a secret of its own (take the middleware path).

    A default ``auth=`` (a borrowed session's) would become an ``Authorization`` header
    that the direct path cannot strip: sent to the LAN, or clashing with the relay's.
    """
    if session.auth is not None:
        return True
    defaults = session.headers
    return bool(defaults) and any(name in defaults for name in send.auth.secret_names())
