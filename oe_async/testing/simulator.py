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
import fnmatch
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from oe_async.auth import BasicAuth
from oe_async.client import OctoEverywhere
from oe_async.testing import (
    fake_app_api,
    fake_files,
    fake_mqtt,
    fake_plugin,
    fake_printer,
    fake_webcam,
    fake_websockets,
)
from oe_async.testing._core import (
    CORE_KEY,
    ORIGIN_KEY,
    SIM_KEY,
    Fault,
    Handler,
    OriginName,
    RecordedRequest,
    Redirect,
    SimulatorCore,
    SimulatorState,
    relay_status,
)
from oe_async.testing.mjpeg_source import load_jpegs
from oe_async.testing.plugin_state import Platform
from oe_async.testing.tls import SimulatorCA

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Fault", "RecordedRequest", "Redirect", "Simulator", "SimulatorState"]


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class SimulatedPrinter(SimulatorCore):
    """One more printer of a :class:`Simulator` (see :meth:`Simulator.add_printer`).

    It has its own relay host, credentials, App API token, state, files and records
    (``requests``); :meth:`app_connection` gives the App Connection an app would store.
    """


class Simulator(SimulatorCore):
    """The OctoEverywhere simulator. Use as ``async with Simulator() as sim``.

    Args:
        host: loopback address to listen on (default 127.0.0.1).
        auth: which credentials the App Connection uses (``"basic"`` or ``"bearer"``).
        ssl: a server-side ``SSLContext`` to serve both origins over https (e.g. from
            ``trustme``); None serves plain http, which clients must accept with
            ``allow_insecure_loopback=True`` (the helpers below do).
        tls: serve https with a certificate authority made for this run (``ca``, a
            :class:`oe_async.testing.SimulatorCA`; needs ``trustme``): every origin,
            ``add_printer()`` hosts included, gets a certificate for its IP address, and
            :meth:`client` trusts it.
        app_id: the app id the simulator expects.
        relay_port, app_api_port: fixed ports (0: any free port).
        platform: answer the plugin API as the real OctoEverywhere plugin does on that
            platform (``"bambu"``, ``"octoprint"``, ``"moonraker"``, ``"prusalink"``,
            ``"elegoo"``, ``"elegoo_cc2"``; see :meth:`SimulatorCore.play`); default: a
            printer with every feature.

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
        platform: Platform | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(auth=auth, app_id=app_id)
        if tls and ssl is not None:
            raise ValueError("pass ssl= (your own certificate) or tls=True, not both")
        if platform is not None:
            self.play(platform)
        self.host: str = host
        self._ports = {"relay": relay_port, "app_api": app_api_port}
        self._ssl = ssl
        self._tls = tls
        #: The certificate authority of ``tls=True`` (set by :meth:`start`), else None.
        self.ca: SimulatorCA | None = None
        self._runners: list[web.AppRunner] = []
        self.relay_url: URL = URL()
        self.app_api_url: URL = URL()
        #: The second instance playing the printer's LAN address (see start_lan()).
        self.lan_url: URL | None = None
        self._lan_runner: web.AppRunner | None = None
        self._lan_port = 0
        self._relay_runner: web.AppRunner | None = None
        #: Printers added with add_printer(), each with its own relay host and secrets.
        self.printers: list[SimulatedPrinter] = []
        self._by_host: dict[str, SimulatedPrinter] = {}
        self._by_token: dict[str, SimulatedPrinter] = {}

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
        loop = asyncio.get_running_loop()
        jpegs, large = await loop.run_in_executor(None, load_jpegs)
        if self._tls and self.ca is None:
            self.ca = await loop.run_in_executor(None, SimulatorCA)
            self._ssl = await loop.run_in_executor(None, self.ca.server_context, self.host)
        self.jpegs = jpegs
        self.large_jpeg = large
        relay = self._make_app("relay", _printer_routes)
        api = self._make_app("app_api", fake_app_api.setup)
        self.relay_url = await self._serve(relay, self._ports["relay"])
        self._relay_runner = self._runners[-1]
        self.app_api_url = await self._serve(api, self._ports["app_api"])

    async def close(self) -> None:
        """Stop every server (open connections are closed)."""
        await self.close_webhook_session()
        await self.stop_lan()
        runners, self._runners = self._runners, []
        self._relay_runner = None
        for runner in reversed(runners):
            await runner.cleanup()

    async def start_lan(self, *, port: int | None = None) -> URL:
        """Start (or restart, on the same port) the printer's LAN address.

        It serves the same fake printer as the relay but knows nothing of OctoEverywhere:
        no relay credentials are checked; requests are recorded with origin ``"lan"``. Set
        ``state.lan_printer_id`` to play another device at that address: it answers like
        the printer but tells another OctoEverywhere printer id (or none).
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

    def client(self, session: aiohttp.ClientSession | None = None, **kwargs: Any) -> OctoEverywhere:
        """An :class:`OctoEverywhere` pointed at this simulator's App API.

        With ``tls=True`` and no session given, it trusts the simulator's authority
        (``ssl_context``); ``kwargs`` override any of that.
        """
        kwargs.setdefault("app_api_url", self.app_api_url)
        kwargs.setdefault("allow_insecure_loopback", self._ssl is None)
        if session is None and self.ca is not None:
            kwargs.setdefault("ssl_context", self.ca.client_context())
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
        cores: list[SimulatorCore] = [self, *self.printers]
        return tuple(
            secret
            for core in cores
            for secret in (
                core.basic_auth.username,
                core.basic_auth.password,
                core.basic_auth.header_value,
                core.bearer_auth.token,
                core.bearer_auth.header_value,
                core.app_token,
                core.state.webhook.secret_key,
                *core.state.plugin.secrets(),
                *(i for i in (core.state.printer_id, core.state.lan_printer_id) if i),
            )
        )

    # ------------------------------------------------------------------ request pipeline

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.app[ORIGIN_KEY]
        core = self._printer_for(request, origin)
        request[CORE_KEY] = core
        core.requests.append(
            RecordedRequest(
                origin=origin,
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=time.monotonic(),
            )
        )
        state = core.state
        if state.latency:
            await asyncio.sleep(state.latency)
        for rule in state.redirects:
            if rule.origin in ("any", origin) and fnmatch.fnmatchcase(request.path, rule.path):
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return web.Response(status=rule.status, headers={"Location": rule.location})
        for fault in state.faults:
            if fault.matches(origin, request.method, request.path):
                if fault.times is not None:
                    fault.times -= 1
                return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        if origin == "relay":  # the LAN instance knows nothing of OctoEverywhere
            status = core.relay_status_for(request)
            if status is not None:
                return relay_status(status)
        try:
            return await handler(request)
        except ConnectionError:
            # The client left mid-answer (an aborted download or stream): a normal event,
            # not a server error worth a traceback.
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
            raise

    def _printer_for(self, request: web.Request, origin: str) -> SimulatorCore:
        """The simulated printer a request is for: by relay host, or by ``AppToken``."""
        if not self.printers:
            return self
        if origin == "app_api":
            token = request.headers.get("AppToken")
            return self._by_token.get(token, self) if token else self
        return self._by_host.get(request.host.lower(), self)

    async def add_printer(self, **state: Any) -> SimulatedPrinter:
        """Add a printer with its own relay host, credentials, App API token and state.

        One simulator then serves many App Connections, as OctoEverywhere does: printer
        ``k`` has the relay ``http(s)://127.1.x.y:<relay port>/`` (a loopback address of its
        own, so every printer is a distinct host for the client's connection pool) and is
        told apart by the App API by its ``AppToken``. ``state`` sets fields of its
        :class:`SimulatorState` (e.g. ``printer_name="Voron"``); ``platform="bambu"`` plays
        that platform's plugin (:meth:`SimulatorCore.play`).
        """
        platform: Platform | None = state.pop("platform", None)
        if self._relay_runner is None:
            raise RuntimeError("start the simulator before adding printers")
        if ":" in self.host:
            raise RuntimeError("add_printer() needs an IPv4 loopback host")
        index = len(self.printers)
        if index >= 250 * 250:
            raise RuntimeError("the simulator serves at most 62,500 printers")
        address = f"127.1.{index // 250 + 1}.{index % 250 + 1}"
        port = self.relay_url.port
        assert port is not None  # noqa: S101
        server_ssl = self._ssl
        if self.ca is not None:  # a certificate for this printer's own address
            loop = asyncio.get_running_loop()
            server_ssl = await loop.run_in_executor(None, self.ca.server_context, address)
        sock = _bound_socket(address, port)
        await web.SockSite(self._relay_runner, sock, ssl_context=server_ssl).start()
        printer = SimulatedPrinter(auth=self._auth_kind, app_id=self.app_id)
        printer.connection_id = f"{self.app_id}-{index + 1}"
        scheme = "https" if self._ssl is not None else "http"
        printer.relay_url = URL(f"{scheme}://{address}:{port}/")
        printer.jpegs, printer.large_jpeg = self.jpegs, self.large_jpeg
        state.setdefault("printer_name", f"Printer {index + 1}")
        printer.state = attrs.evolve(printer.state, **state)
        if platform is not None:
            printer.play(platform)
        self.printers.append(printer)
        self._by_host[f"{address}:{port}"] = printer
        self._by_token[printer.app_token] = printer
        return printer


def _printer_routes(app: web.Application) -> None:
    """The fake printer, served by the relay and by the LAN instance alike."""
    fake_printer.setup(app)
    fake_files.setup(app)
    fake_webcam.setup(app)
    fake_websockets.setup(app)
    fake_mqtt.setup(app)  # before fake_plugin: its path is under the plugin's prefix
    fake_plugin.setup(app)  # last: its catch-all must not shadow the raw file/webcam routes
