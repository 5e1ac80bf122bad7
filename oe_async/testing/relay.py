"""A stand-in for OctoEverywhere's relay in front of a REAL printer server on loopback.

:class:`oe_async.testing.Simulator` fakes the printer as well as OctoEverywhere. The
stand-in relay fakes only OctoEverywhere: it plays the App Connection URL in front of a real
OctoPrint, Moonraker, ... that runs on this machine, so integration tests and developer
benches exercise the library against the printer's real answers::

    async with StandInRelay("http://127.0.0.1:5000") as relay:
        async with OctoEverywhere(
            "my-app", app_api_url=relay.app_api_url, allow_insecure_loopback=True
        ) as oe:
            printer = oe.printer(relay.app_connection(octoprint_api_key=KEY))
            version = await printer.get_json("/api/version")

What it does, like the production relay:

* checks the App Connection ``Authorization`` on every request and WebSocket handshake
  (606 with a short text body when it is missing or wrong) and strips it before forwarding:
  the printer never sees the relay credentials;
* forwards method, path, raw query, headers (except hop-by-hop ones, ``Host``, ``Expect``)
  and the body, streamed both ways and never held whole in memory; ``Content-Length`` is
  kept when the client sent one (OctoPrint answers 411 without it), chunked stays chunked;
* answers with the printer's status, headers and body unchanged: redirects are passed
  through, compressed bodies stay byte-identical (nothing is decompressed);
* proxies WebSockets both ways (text, binary, close codes);
* answers 601 (printer offline) when the printer server cannot be reached, and drops the
  client's connection when the printer drops its answer mid-body.

For tests it adds: a record of every request (:attr:`StandInRelay.requests`), forced
statuses (:meth:`StandInRelay.fail`), :meth:`StandInRelay.restart` on the same port (to
test reconnects), :meth:`StandInRelay.close_websockets`, and a minimal App API origin
(:attr:`StandInRelay.app_api_url`, ``GET /api/appconnection/info`` only) so a client's
limit pre-check stays on loopback. It does not enforce account limits (force 607/608 with
:meth:`StandInRelay.fail`).

Everything stays on loopback: a target or bind address that is not loopback is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hmac
import ipaddress
import logging
import secrets
import socket
import ssl as ssl_module
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import attrs
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from oe_async.auth import BasicAuth, BearerAuth
from oe_async.errors import InvalidArgumentError
from oe_async.models import AppConnection, PrinterLimits
from oe_async.testing.canary import SECRET_MARKER

__all__ = ["RelayFault", "RelayedRequest", "StandInRelay"]

_LOGGER = logging.getLogger(__name__)

#: Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers the relay consumes itself: its credentials, the target's Host (set by
#: the client session) and Expect (answered by the relay's own server).
_REQUEST_ONLY: Final = frozenset({"authorization", "host", "expect"})
#: WebSocket handshake headers that each hop negotiates on its own.
_WS_HANDSHAKE: Final = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
#: Close codes that must not be sent on the wire (RFC 6455 7.4.1): forwarded as 1000.
_UNSENDABLE_CLOSE_CODES: Final = frozenset({0, 1005, 1006, 1015})
_CLOSE_TIMEOUT: Final = 5.0


@attrs.define(kw_only=True)
class RelayedRequest:
    """One request as the relay received it, and what it answered.

    ``status`` is None until the answer's status is known (101 for a proxied WebSocket),
    and stays None when the client went away before the printer answered;
    ``forwarded`` tells whether the request reached the printer server.
    """

    method: str
    path: str
    query: str
    websocket: bool
    at: float
    status: int | None = None
    forwarded: bool = False


@attrs.define(kw_only=True)
class RelayFault:
    """Answer ``status`` instead of forwarding, ``times`` times (None: until cleared).

    ``path`` is an fnmatch pattern on the request path (query excluded); ``method`` None
    matches every method. WebSocket handshakes match like any other request.
    """

    status: int
    path: str = "*"
    method: str | None = None
    times: int | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes | None = None

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to the request."""
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)


@attrs.define(eq=False)
class _ProxiedSocket:
    request: web.Request
    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse


def _loopback_literal(host: str | None, what: str) -> str:
    """``host`` as a loopback IP literal (``localhost`` is 127.0.0.1); refuse anything else."""
    name = (host or "").strip().lower().rstrip(".")
    if name == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise InvalidArgumentError(
            f"{what} must be a loopback address (127.0.0.0/8, ::1 or localhost), not {host!r}"
        )
    return str(address)


def _relay_answer(status: int, text: str | None = None) -> web.Response:
    """A bare OctoEverywhere status answer, as the relay sends it."""
    return web.Response(status=status, text=text or f"OctoEverywhere status {status}")


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    """Header names listed in ``Connection`` (hop-by-hop by declaration)."""
    value = ",".join(v for k, v in headers.items() if k.lower() == "connection")
    return {token.strip().lower() for token in value.split(",") if token.strip()}


def _forwardable(headers: Mapping[str, str], drop: Iterable[str]) -> CIMultiDict[str]:
    """``headers`` without hop-by-hop ones and ``drop`` (duplicates kept, in order)."""
    dropped = set(_HOP_BY_HOP) | set(drop) | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in dropped:
            out.add(name, value)
    return out


class StandInRelay:
    """OctoEverywhere's relay, played in front of a real printer server on loopback.

    Use as ``async with StandInRelay(target) as relay`` (or :meth:`start` / :meth:`close`).

    Args:
        target: the printer server's base URL (``http://127.0.0.1:5000``); its host must
            be loopback. A path in it is prefixed to every forwarded path.
        auth: the credentials the relay accepts; default: generated Basic credentials
            containing :data:`oe_async.testing.SECRET_MARKER`.
        host: loopback address to listen on.
        port: port for the relay (0: a free one, kept across :meth:`restart`).
        ssl: a server-side ``SSLContext`` to serve https (the relay and its App API
            origin, e.g. from ``trustme``); None serves plain http. Either way clients
            must pass ``allow_insecure_loopback=True`` (:meth:`app_connection` sets it).
        target_ssl: the client-side TLS setting for an https target (aiohttp's ``ssl=``).

    Attributes:
        url: the relay's base URL (the App Connection URL), set by :meth:`start`.
        app_api_url: the base URL of its App API origin (Info API only).
        auth: the credentials the relay accepts.
        app_token: the ``AppToken`` its App API accepts.
        limits: what its Info API reports (default: no limits, so no pre-check).
        requests: every request the relay received, in order.
        faults: the forced statuses (see :meth:`fail`).

    """

    def __init__(
        self,
        target: URL | str,
        *,
        auth: BasicAuth | BearerAuth | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl_module.SSLContext | None = None,
        target_ssl: ssl_module.SSLContext | bool | None = None,
    ) -> None:
        target_url = URL(str(target))
        if not target_url.absolute or target_url.scheme not in ("http", "https"):
            raise InvalidArgumentError("target must be an absolute http(s) URL")
        _loopback_literal(target_url.host, "target host")
        if auth is not None and not isinstance(auth, BasicAuth | BearerAuth):
            raise InvalidArgumentError("auth must be BasicAuth or BearerAuth")
        self._bind_host = _loopback_literal(host, "host")
        self._port = port
        self._target = target_url
        self._target_prefix = str(target_url.origin()) + target_url.raw_path.rstrip("/")
        self._ssl = ssl
        self._target_ssl: ssl_module.SSLContext | bool = True if target_ssl is None else target_ssl
        self.auth: BasicAuth | BearerAuth = auth or BasicAuth(
            f"{SECRET_MARKER}-relay-user-{secrets.token_hex(4)}",
            f"{SECRET_MARKER}-relay-pw-{secrets.token_urlsafe(18)}",
        )
        self.app_token: str = f"{SECRET_MARKER}-relay-app-{secrets.token_urlsafe(18)}"
        self.limits: PrinterLimits = PrinterLimits()
        self.requests: list[RelayedRequest] = []
        self.faults: list[RelayFault] = []
        self.url: URL = URL()
        self.app_api_url: URL = URL()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._api_runner: web.AppRunner | None = None
        self._sockets: set[_ProxiedSocket] = set()

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return f"<StandInRelay {self.url or '(not started)'} -> {self._target} {state}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        """True while the relay listens (False between :meth:`stop` and :meth:`start`)."""
        return self._runner is not None

    async def start(self) -> None:
        """Start listening (again, on the same port after :meth:`stop`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._target_ssl, limit=0),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                trust_env=False,
            )
        if self._api_runner is None:
            api = web.Application()
            api.router.add_get("/api/appconnection/info", self._info)
            self._api_runner, api_port = await self._serve(api, 0)
            self.app_api_url = self._base_url(api_port)
        if self._runner is None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner, self._port = await self._serve(app, self._port)
            self.url = self._base_url(self._port)

    async def stop(self) -> None:
        """Take the relay down like a crash; :meth:`start` listens again on the same port.

        Proxied WebSockets are aborted without a close frame (the printer's side is closed
        normally); HTTP answers still streaming get 0.5 s, then their connections drop.
        The App API origin stays up.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for proxied in list(self._sockets):
            if proxied.request.transport is not None:
                proxied.request.transport.abort()
        await runner.cleanup()

    async def restart(self, *, downtime: float = 0.0) -> None:
        """:meth:`stop`, wait ``downtime`` seconds, :meth:`start` on the same port."""
        await self.stop()
        if downtime > 0:
            await asyncio.sleep(downtime)
        await self.start()

    async def close(self) -> None:
        """Stop everything: the relay, its App API origin and its client session."""
        await self.stop()
        api, self._api_runner = self._api_runner, None
        if api is not None:
            await api.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _serve(self, app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._bind_host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._bind_host, port))
            await web.SockSite(runner, sock, ssl_context=self._ssl).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        return runner, int(sock.getsockname()[1])

    def _base_url(self, port: int) -> URL:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return URL(f"{scheme}://{host}:{port}/")

    # ------------------------------------------------------------------ test helpers

    def app_connection(self, **overrides: Any) -> AppConnection:
        """An :class:`oe_async.AppConnection` for this relay (override any field).

        ``allow_insecure_loopback`` is on (the relay is always on loopback, over http or
        https). Pass ``octoprint_api_key=`` for OctoPrint, or ``auth=`` to try other
        credentials.
        """
        fields: dict[str, Any] = {
            "url": self.url,
            "auth": self.auth,
            "app_token": self.app_token,
            "id": "stand-in-relay",
            "printer_name": "Stand-in relay",
            "allow_insecure_loopback": True,
        }
        fields.update(overrides)
        return AppConnection(**fields)

    def fail(
        self,
        status: int,
        *,
        path: str = "*",
        method: str | None = None,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> RelayFault:
        """Answer ``status`` to matching requests instead of forwarding them.

        Faults are checked before the credentials, in the order they were added. ``path``
        is an fnmatch pattern; ``times`` None means until :meth:`clear_faults` (or remove
        the returned fault from :attr:`faults`). The body defaults to OctoEverywhere's
        short text.
        """
        fault = RelayFault(
            status=status,
            path=path,
            method=method,
            times=times,
            headers=dict(headers or {}),
            body=body,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every forced status."""
        self.faults.clear()

    def requests_to(self, path: str) -> list[RelayedRequest]:
        """Recorded requests whose path matches the fnmatch pattern ``path``."""
        return [r for r in self.requests if fnmatch.fnmatchcase(r.path, path)]

    async def close_websockets(self, code: int = 1001, message: bytes = b"") -> int:
        """Close every proxied WebSocket towards the client with ``code`` (6xx allowed).

        The printer's side is closed normally. Returns how many were closed.
        """
        sockets = list(self._sockets)
        await asyncio.gather(
            *(proxied.client.close(code=code, message=message) for proxied in sockets),
            return_exceptions=True,
        )
        return len(sockets)

    def secrets(self) -> tuple[str, ...]:
        """Every secret the relay hands out (for leak checks), encoded header included."""
        values: tuple[str, ...]
        if isinstance(self.auth, BasicAuth):
            values = (self.auth.username, self.auth.password)
        else:
            values = (self.auth.token,)
        return (*values, self.auth.header_value, self.app_token)

    # ------------------------------------------------------------------ App API origin

    async def _info(self, request: web.Request) -> web.Response:
        """``GET /api/appconnection/info``: enough for a client's limit pre-check."""
        token = request.headers.get("AppToken")
        if not token:
            return web.json_response({"Error": "AppToken is required"}, status=400)
        if not hmac.compare_digest(token.encode(), self.app_token.encode()):
            return _relay_answer(603)
        limits = self.limits
        return web.json_response(
            {
                "PrinterName": "Stand-in relay",
                "IsOnline": self.running,
                "PrinterLimits": {
                    "MaxDownloadFileSizeBytes": limits.max_download_bytes,
                    "MaxUploadFileSizeBytes": limits.max_upload_bytes,
                    "MaxSingleWebcamStreamLengthSeconds": limits.max_webcam_stream_seconds,
                },
            }
        )

    # ------------------------------------------------------------------ relay

    def _authorised(self, header: str | None) -> bool:
        if header is None:
            return False
        scheme, _, value = header.strip().partition(" ")
        want_scheme, _, want_value = self.auth.header_value.partition(" ")
        same_scheme = scheme.lower() == want_scheme.lower()
        same_value = hmac.compare_digest(value.strip().encode(), want_value.encode())
        return same_scheme and same_value

    def _fault_for(self, request: web.Request) -> RelayFault | None:
        for fault in self.faults:
            if fault.matches(request.method, request.path):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower()
        websocket = upgrade == "websocket" and "upgrade" in _connection_tokens(request.headers)
        record = RelayedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            websocket=websocket,
            at=time.monotonic(),
        )
        self.requests.append(record)
        fault = self._fault_for(request)
        if fault is not None:
            record.status = fault.status
            if fault.body is None:
                answer = _relay_answer(fault.status)
            else:
                answer = web.Response(status=fault.status, body=fault.body)
            answer.headers.update(fault.headers)
            return answer
        if not self._authorised(request.headers.get("Authorization")):
            record.status = 606
            return _relay_answer(
                606, "OctoEverywhere status 606: missing or wrong App Connection credentials"
            )
        url = URL(self._target_prefix + request.raw_path, encoded=True)
        if websocket:
            return await self._proxy_websocket(request, url, record)
        return await self._proxy_http(request, url, record)

    async def _proxy_http(
        self, request: web.Request, url: URL, record: RelayedRequest
    ) -> web.StreamResponse:
        assert self._session is not None  # noqa: S101 (set by start())
        headers = _forwardable(request.headers, _REQUEST_ONLY)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            if request.transport is None or request.transport.is_closing():
                # The client went away mid-upload; nobody is left to answer (status None).
                _LOGGER.debug("stand-in relay: client gone (%s)", type(err).__name__)
                return web.Response(status=499)
            _LOGGER.debug("stand-in relay: printer unreachable (%s)", type(err).__name__)
            record.status = 601
            return _relay_answer(601, "OctoEverywhere status 601: the printer is not reachable")
        record.forwarded = True
        record.status = upstream.status
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in _forwardable(upstream.headers, ()).items():
            response.headers.add(name, value)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            # The printer dropped its answer, or the client went away: never end the
            # client's body cleanly, so a truncated body cannot pass for a whole one.
            _LOGGER.debug("stand-in relay: transfer broken (%s)", type(err).__name__)
            if request.transport is not None:
                request.transport.abort()
        finally:
            upstream.release()
        return response

    async def _proxy_websocket(
        self, request: web.Request, url: URL, record: RelayedRequest
    ) -> web.StreamResponse:
        assert self._session is not None  # noqa: S101 (set by start())
        headers = _forwardable(request.headers, _REQUEST_ONLY | _WS_HANDSHAKE)
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        try:
            upstream = await self._session.ws_connect(
                url,
                headers=headers,
                protocols=protocols,
                autoclose=False,
                autoping=True,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT),
            )
        except aiohttp.WSServerHandshakeError as err:
            record.forwarded = True
            record.status = err.status
            return web.Response(status=err.status, text=f"WebSocket refused ({err.status})")
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            _LOGGER.debug("stand-in relay: printer unreachable (%s)", type(err).__name__)
            record.status = 601
            return _relay_answer(601, "OctoEverywhere status 601: the printer is not reachable")
        record.forwarded = True
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            autoclose=False,
            autoping=True,
            max_msg_size=0,
            compress=False,
            timeout=_CLOSE_TIMEOUT,
        )
        proxied = _ProxiedSocket(request, client, upstream)
        self._sockets.add(proxied)
        try:
            try:
                await client.prepare(request)
            except (ConnectionError, aiohttp.ClientError):
                return client
            record.status = 101
            await self._pump_both(client, upstream)
        finally:
            self._sockets.discard(proxied)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await upstream.close()
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await client.close()
        return client

    async def _pump_both(
        self, client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
    ) -> None:
        to_printer = asyncio.ensure_future(_pump(client, upstream))
        to_client = asyncio.ensure_future(_pump(upstream, client))
        tasks = {to_printer, to_client}
        try:
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # the other side is finishing its closing handshake
                await asyncio.wait(pending, timeout=_CLOSE_TIMEOUT)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy messages from ``source`` to ``sink`` until a close, passing the close code on."""
    try:
        while True:
            message = await source.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type is aiohttp.WSMsgType.CLOSE:
                code = message.data if isinstance(message.data, int) else 0
                code = 1000 if code in _UNSENDABLE_CLOSE_CODES else code
                reason = (message.extra or "").encode()
                await sink.close(code=code, message=reason)
                await source.close(code=code)  # answer the close we received
                return
            elif message.type not in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                break  # CLOSING, CLOSED, ERROR: this side is gone
    except (ConnectionError, aiohttp.ClientError) as err:
        _LOGGER.debug("stand-in relay: WebSocket side gone (%s)", type(err).__name__)
    # The source went away without a close frame (or is being closed by the relay):
    # close the other side normally, which also ends the pump reading it.
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
        await sink.close()
