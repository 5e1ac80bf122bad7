"""A real OctoEverywhere simulator on 127.0.0.1 for tests and demos (aiohttp.web).

Two servers, two origins, like production:

* the **App API** origin (``app_api_url``): ``/api/appconnection/info``, Live Links, ...,
  authorised by the ``AppToken`` header;
* the **relay** origin (``relay_url``): the App Connection URL in front of a fake printer
  (OctoPrint-like JSON endpoints), authorised by the App Connection ``Authorization``.

Everything a client can meet is switchable at run time: wrong credentials (606), a revoked
or unknown connection (604/603), lost Supporter Perks (605), the printer offline (601), any
status forced on any route (``fail``), latency, redirects, and the account limits. Every
request is recorded (``requests``) so tests can count calls and check what each origin saw.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import secrets
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import attrs
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from oe_async.auth import BasicAuth, BearerAuth, is_loopback_host
from oe_async.client import OctoEverywhere
from oe_async.models import AppConnection, PrinterLimits
from oe_async.testing.canary import SECRET_MARKER
from oe_async.testing.files import FileStore, SimFile, TransferFaults
from oe_async.testing.mjpeg_source import WebcamSettings, load_jpegs
from oe_async.testing.plugin_state import GadgetSettings, PluginSettings, WebhookSettings

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Fault", "RecordedRequest", "Redirect", "Simulator", "SimulatorState"]

OriginName = Literal["relay", "app_api", "lan"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ORIGIN_KEY: Final = web.AppKey("oe_origin", str)


@attrs.define(kw_only=True)
class RecordedRequest:
    """One request as a simulator origin received it."""

    origin: str
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    at: float

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header, if any."""
        return self.headers.get("Authorization")


@attrs.define(kw_only=True)
class Fault:
    """Answer ``status`` instead of the real route, ``times`` times (None: until cleared)."""

    status: int
    path: str = "*"
    origin: OriginName | Literal["any"] = "any"
    times: int | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    method: str | None = None

    def matches(self, origin: str, method: str, path: str) -> bool:
        """True when this fault applies to the request."""
        if self.times is not None and self.times <= 0:
            return False
        if self.origin not in ("any", origin):
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


@attrs.define(kw_only=True)
class Redirect:
    """Answer a redirect to ``location`` for matching requests (``times``: None = always)."""

    path: str
    location: str
    status: int = 302
    origin: OriginName | Literal["any"] = "relay"
    times: int | None = None


@attrs.define(kw_only=True)
class SimulatorState:
    """Everything the simulator's behaviour depends on; change it at any time."""

    connection: Literal["ok", "revoked", "not_found"] = "ok"
    supporter: bool = True
    printer_online: bool = True
    latency: float = 0.0
    limits: PrinterLimits = attrs.field(
        factory=lambda: PrinterLimits(
            max_download_bytes=2 * 1024**3,
            max_upload_bytes=1 * 1024**3,
            max_webcam_stream_seconds=300,
        )
    )
    printer_name: str = "Simulated Printer"
    local_ip: str | None = "127.0.0.1"
    last_connection_time: str = "2026-11-23T08:00:00.1234567Z"
    last_disconnect_time: str = "2026-11-22T22:15:00Z"
    active_print: bool = True
    #: When set, the fake OctoPrint API requires this ``X-Api-Key`` (403 otherwise).
    octoprint_api_key: str | None = None
    transfer: TransferFaults = attrs.field(factory=TransferFaults)
    webcam: WebcamSettings = attrs.field(factory=WebcamSettings)
    plugin: PluginSettings = attrs.field(factory=PluginSettings)
    gadget: GadgetSettings = attrs.field(factory=GadgetSettings)
    webhook: WebhookSettings = attrs.field(factory=WebhookSettings)
    #: Seconds between pushed WebSocket messages (OctoPrint "current", Moonraker status).
    ws_interval: float = 0.5
    faults: list[Fault] = attrs.field(factory=list)
    redirects: list[Redirect] = attrs.field(factory=list)


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Simulator:
    """The OctoEverywhere simulator. Use as ``async with Simulator() as sim``.

    Args:
        host: loopback address to listen on (default 127.0.0.1).
        auth: which credentials the App Connection uses (``"basic"`` or ``"bearer"``).
        ssl: a server-side ``SSLContext`` to serve both origins over https (e.g. from
            ``trustme``); None serves plain http, which clients must accept with
            ``allow_insecure_loopback=True`` (the helpers below do).
        app_id: the app id the simulator expects.
        relay_port, app_api_port: fixed ports (0: any free port).

    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        auth: Literal["basic", "bearer"] = "basic",
        ssl: ssl_module.SSLContext | None = None,
        app_id: str = "oe-async-simulator",
        relay_port: int = 0,
        app_api_port: int = 0,
    ) -> None:
        self.host = host
        self._ports = {"relay": relay_port, "app_api": app_api_port}
        self.app_id = app_id
        self.state = SimulatorState()
        self.requests: list[RecordedRequest] = []
        self._ssl = ssl
        self._auth_kind = auth
        self.basic_auth = BasicAuth(
            f"{SECRET_MARKER}-user-{secrets.token_hex(4)}",
            f"{SECRET_MARKER}-pw-{secrets.token_urlsafe(18)}",
        )
        self.bearer_auth = BearerAuth(f"{SECRET_MARKER}-tok-{secrets.token_urlsafe(24)}")
        self.app_token = f"{SECRET_MARKER}-app-{secrets.token_urlsafe(24)}"
        self._runners: list[web.AppRunner] = []
        self.relay_url = URL()
        self.app_api_url = URL()
        #: The fake printer's files (uploads land here; add files to download).
        self.files = FileStore()
        #: Every completed upload, in order.
        self.uploads: list[SimFile] = []
        #: The packaged JPEG frames (loaded off the event loop in start()).
        self.jpegs: list[bytes] = []
        self.large_jpeg = b""
        #: When webcam streams were opened (for the 609 rate limit) and how many were served.
        self.webcam_opens: collections.deque[float] = collections.deque()
        self.webcam_streams = 0
        self.webcam_part_cache: dict[object, bytes] = {}
        #: Open server-side WebSockets, and every JSON message they received (path, data).
        self.websockets: list[tuple[web.WebSocketResponse, web.Request]] = []
        self.ws_received: list[tuple[str, object]] = []
        #: OctoPrint control commands the fake printer accepted (path, JSON body), in order.
        self.printer_commands: list[tuple[str, dict[str, object]]] = []
        #: The second instance playing the printer's LAN address (see start_lan()).
        self.lan_url: URL | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self._lan_runner: web.AppRunner | None = None
        self._lan_port = 0

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

    async def start(self) -> None:
        """Start both servers on free loopback ports."""
        from . import fake_app_api  # noqa: PLC0415 (it imports this module)

        self.jpegs, self.large_jpeg = await asyncio.get_running_loop().run_in_executor(
            None, load_jpegs
        )
        relay = self._make_app("relay", _printer_routes)
        api = self._make_app("app_api", fake_app_api.setup)
        self.relay_url = await self._serve(relay, self._ports["relay"])
        self.app_api_url = await self._serve(api, self._ports["app_api"])

    async def close(self) -> None:
        """Stop every server (open connections are closed)."""
        if self._webhook_session is not None:
            await self._webhook_session.close()
        await self.stop_lan()
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()

    async def start_lan(self, *, port: int | None = None) -> URL:
        """Start (or restart, on the same port) the printer's LAN address.

        It serves the same fake printer as the relay but knows nothing of OctoEverywhere:
        no relay credentials are checked; requests are recorded with origin ``"lan"``.
        """
        if self._lan_runner is None:
            app = self._make_app("lan", _printer_routes)
            runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            sock = _bound_socket(self.host, self._lan_port if port is None else port)
            await web.SockSite(runner, sock, ssl_context=None).start()
            self._lan_port = sock.getsockname()[1]
            self._lan_runner = runner
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.lan_url = URL(f"http://{host}:{self._lan_port}/")
        assert self.lan_url is not None  # noqa: S101
        return self.lan_url

    async def stop_lan(self) -> None:
        """Take the LAN address down (its port stays reserved for start_lan())."""
        runner, self._lan_runner = self._lan_runner, None
        if runner is not None:
            await runner.cleanup()

    async def deliver_webhook(self, event_type: int, **fields: object) -> int | None:
        """POST a notification to the registered webhook, as OctoEverywhere would.

        Returns the status the webhook answered, or None when no webhook is set, the event
        is filtered out, or the call failed. Only loopback URLs are called.
        """
        settings = self.state.webhook
        if settings.url is None:
            return None
        if settings.event_types and event_type not in settings.event_types and event_type != 16:
            return None
        url = URL(settings.url)
        if not is_loopback_host(url.host):
            raise RuntimeError("the simulator only delivers webhooks to loopback URLs")
        payload: dict[str, object] = {
            "PrinterId": settings.printer_id,
            "SecretKey": settings.secret_key,
            "PrintId": "sim-print-1",
            "EventType": event_type,
            "PrinterName": self.state.printer_name,
            "QuickViewUrl": "https://octoeverywhere.com/quickview/sim",
            **fields,
        }
        if self._webhook_session is None:
            import aiohttp  # noqa: PLC0415 (only needed when webhooks are delivered)

            self._webhook_session = aiohttp.ClientSession()
        status: int | None
        try:
            async with self._webhook_session.post(settings.url, json=payload) as resp:
                status = resp.status
        except OSError:
            status = None
        except Exception:  # noqa: BLE001 (a receiver that misbehaves is reported as None)
            status = None
        settings.deliveries.append((event_type, status))
        return status

    async def kill_websockets(self) -> int:
        """Drop every open WebSocket without a close frame; return how many."""
        sockets = list(self.websockets)
        for _, request in sockets:
            if request.transport is not None:
                request.transport.abort()
        return len(sockets)

    async def close_websockets(self, code: int = 1000, message: bytes = b"") -> int:
        """Close every open WebSocket with ``code`` (e.g. 604); return how many."""
        sockets = list(self.websockets)
        for ws, _ in sockets:
            await ws.close(code=code, message=message)
        return len(sockets)

    def _make_app(self, origin: str, setup: Callable[[web.Application], None]) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**3)
        app[SIM_KEY] = self
        app[ORIGIN_KEY] = origin
        setup(app)
        return app

    async def _serve(self, app: web.Application, port: int) -> URL:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        self._runners.append(runner)
        sock = _bound_socket(self.host, port)
        site = web.SockSite(runner, sock, ssl_context=self._ssl)
        await site.start()
        port = sock.getsockname()[1]
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return URL(f"{scheme}://{host}:{port}/")

    # ------------------------------------------------------------------ client helpers

    @property
    def auth(self) -> BasicAuth | BearerAuth:
        """The credentials the relay accepts."""
        return self.basic_auth if self._auth_kind == "basic" else self.bearer_auth

    def app_connection(self, **overrides: Any) -> AppConnection:
        """An :class:`AppConnection` for this simulator (override any field)."""
        fields: dict[str, Any] = {
            "url": self.relay_url,
            "auth": self.auth,
            "app_token": self.app_token,
            "id": "sim-" + self.app_id,
            "printer_name": self.state.printer_name,
            "local_ip": None,
        }
        fields.update(overrides)
        if "allow_insecure_loopback" not in fields:
            # The relay is on 127.0.0.1 (http, or https with a test CA): the one place an
            # App Connection may leave octoeverywhere.com, and only with this opt-in.
            try:
                fields["allow_insecure_loopback"] = is_loopback_host(URL(str(fields["url"])).host)
            except ValueError:  # a bad url override: let AppConnection name the problem
                fields["allow_insecure_loopback"] = False
        return AppConnection(**fields)

    def client(self, session: aiohttp.ClientSession | None = None, **kwargs: Any) -> OctoEverywhere:
        """An :class:`OctoEverywhere` pointed at this simulator's App API."""
        kwargs.setdefault("app_api_url", self.app_api_url)
        kwargs.setdefault("allow_insecure_loopback", self._ssl is None)
        return OctoEverywhere(self.app_id, session=session, **kwargs)

    def completion_url(self, *, success: bool = True, **overrides: str) -> URL:
        """The completion URL the portal would hand an app for this simulator."""
        params: dict[str, str] = {
            "success": "true" if success else "false",
            "id": "sim-" + self.app_id,
            "url": str(self.relay_url).rstrip("/"),
            "appApiToken": self.app_token,
            "printername": self.state.printer_name,
        }
        if isinstance(self.auth, BasicAuth):
            params["authBasicHttpUser"] = self.auth.username
            params["authBasicHttpPassword"] = self.auth.password
        else:
            params["authBearerToken"] = self.auth.token
        params.update(overrides)
        return URL("https://octoeverywhere.com/appportal/v1/complete").with_query(params)

    # ------------------------------------------------------------------ switches

    def fail(
        self,
        status: int,
        *,
        path: str = "*",
        origin: OriginName | Literal["any"] = "any",
        times: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        method: str | None = None,
    ) -> Fault:
        """Force ``status`` on matching requests (``path`` is an fnmatch pattern)."""
        fault = Fault(
            status=status,
            path=path,
            origin=origin,
            times=times,
            headers=dict(headers or {}),
            body=body,
            method=method,
        )
        self.state.faults.append(fault)
        return fault

    def redirect(
        self,
        path: str,
        location: str | URL,
        *,
        status: int = 302,
        origin: OriginName | Literal["any"] = "relay",
        times: int | None = None,
    ) -> Redirect:
        """Answer matching requests with a redirect to ``location``."""
        rule = Redirect(
            path=path, location=str(location), status=status, origin=origin, times=times
        )
        self.state.redirects.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every forced status and redirect."""
        self.state.faults.clear()
        self.state.redirects.clear()

    def revoke(self) -> None:
        """The user revoked the App Connection: 604 from now on."""
        self.state.connection = "revoked"

    def requests_to(
        self, origin: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, filtered by origin and/or fnmatch path pattern."""
        return [
            r
            for r in self.requests
            if (origin is None or r.origin == origin)
            and (path is None or fnmatch.fnmatchcase(r.path, path))
        ]

    def secrets(self) -> Iterable[str]:
        """Every secret this simulator hands out (for leak checks in tests).

        Each also contains :data:`SECRET_MARKER`, except the encoded ``Authorization``
        header values, which are listed as they travel.
        """
        return (
            self.basic_auth.username,
            self.basic_auth.password,
            self.basic_auth.header_value,
            self.bearer_auth.token,
            self.bearer_auth.header_value,
            self.app_token,
            self.state.webhook.secret_key,
        )

    # ------------------------------------------------------------------ request pipeline

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.app[ORIGIN_KEY]
        self.requests.append(
            RecordedRequest(
                origin=origin,
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=time.monotonic(),
            )
        )
        if self.state.latency:
            await asyncio.sleep(self.state.latency)
        for rule in self.state.redirects:
            if rule.origin in ("any", origin) and fnmatch.fnmatchcase(request.path, rule.path):
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return web.Response(status=rule.status, headers={"Location": rule.location})
        for fault in self.state.faults:
            if fault.matches(origin, request.method, request.path):
                if fault.times is not None:
                    fault.times -= 1
                return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        if origin == "relay":  # the LAN instance knows nothing of OctoEverywhere
            refusal = self._relay_refusal(request)
            if refusal is not None:
                return refusal
        return await handler(request)

    def _relay_refusal(self, request: web.Request) -> web.Response | None:
        """What the relay answers before the printer sees the request, if anything."""
        status = self._relay_status(request)
        return relay_status(status) if status is not None else None

    def _relay_status(self, request: web.Request) -> int | None:
        state = self.state
        limit = state.limits.max_upload_bytes
        checks = (
            (state.connection == "not_found", 603),
            (request.headers.get("Authorization") != self.auth.header_value, 606),
            (state.connection == "revoked", 604),
            (not state.supporter, 605),
            (not state.printer_online, 601),
            (limit is not None and (request.content_length or 0) > limit, 608),
        )
        return next((status for failed, status in checks if failed), None)


def relay_status(status: int) -> web.Response:
    """A bare OctoEverywhere status answer, as the relay sends it."""
    return web.Response(status=status, text=f"OctoEverywhere status {status}")


SIM_KEY: Final = web.AppKey("oe_simulator", Simulator)


def _printer_routes(app: web.Application) -> None:
    """The fake printer, served by the relay and by the LAN instance alike."""
    # The route modules import this one for simulator_of(); import them late.
    from . import (  # noqa: PLC0415
        fake_files,
        fake_plugin,
        fake_printer,
        fake_webcam,
        fake_websockets,
    )

    fake_printer.setup(app)
    fake_files.setup(app)
    fake_webcam.setup(app)
    fake_websockets.setup(app)
    fake_plugin.setup(app)  # last: its catch-all must not shadow the raw file/webcam routes


def simulator_of(request: web.Request) -> Simulator:
    """The :class:`Simulator` serving ``request``."""
    return request.app[SIM_KEY]
