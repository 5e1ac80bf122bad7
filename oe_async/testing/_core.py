"""What the simulator's routes share: its state, its records and a few helpers.

The route modules (``fake_*``) take everything from here; :class:`oe_async.testing.Simulator`
(in :mod:`oe_async.testing.simulator`) extends :class:`SimulatorCore` with the servers, the
request pipeline and the client helpers, and composes the routes. Nothing here imports the
simulator or a route module, so the package has no import cycle.
"""

from __future__ import annotations

import collections
import fnmatch
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

import aiohttp
import attrs
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

from oe_async.auth import BasicAuth, BearerAuth, is_loopback_host
from oe_async.models import AppConnection, PrinterLimits
from oe_async.testing.canary import SECRET_MARKER
from oe_async.testing.files import FileStore, SimFile, TransferFaults
from oe_async.testing.mjpeg_source import WebcamSettings
from oe_async.testing.plugin_state import (
    GadgetSettings,
    Platform,
    PluginSettings,
    WebhookSettings,
    platform_settings,
    platform_webcams,
)

__all__ = [
    "ORIGIN_KEY",
    "PLUGIN_MEDIA_TYPE",
    "SIM_KEY",
    "UNKNOWN_COMMAND",
    "Fault",
    "Handler",
    "OriginName",
    "RecordedRequest",
    "Redirect",
    "SimulatorCore",
    "SimulatorState",
    "plugin_json",
    "plugin_raw_error",
    "relay_status",
    "simulator_of",
]

OriginName = Literal["relay", "app_api", "lan"]
#: An aiohttp.web request handler.
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
    #: The OctoEverywhere printer id the OctoPrint plugin tells at
    #: ``GET /api/plugin/octoeverywhere`` (no API key needed); None: no such plugin there
    #: (404), as on a platform other than OctoPrint. It carries SECRET_MARKER: printer ids
    #: identify a printer and must never be logged.
    printer_id: str | None = attrs.field(
        factory=lambda: f"{SECRET_MARKER}-printer-id-{secrets.token_hex(6)}"
    )
    #: What the LAN address tells there instead (default: ``printer_id`` as made): another
    #: id, or None (404), plays another device holding the printer's stored LAN address.
    lan_printer_id: str | None = attrs.field(
        default=attrs.Factory(lambda state: state.printer_id, takes_self=True)
    )
    transfer: TransferFaults = attrs.field(factory=TransferFaults)
    webcam: WebcamSettings = attrs.field(factory=WebcamSettings)
    plugin: PluginSettings = attrs.field(factory=PluginSettings)
    gadget: GadgetSettings = attrs.field(factory=GadgetSettings)
    webhook: WebhookSettings = attrs.field(factory=WebhookSettings)
    #: Seconds between pushed WebSocket messages (OctoPrint "current", Moonraker status).
    ws_interval: float = 0.5
    faults: list[Fault] = attrs.field(factory=list)
    redirects: list[Redirect] = attrs.field(factory=list)


class SimulatorCore:
    """The simulator's state and records, as its routes see them.

    Args:
        auth: which credentials the App Connection uses (``"basic"`` or ``"bearer"``).
        app_id: the app id the simulator expects.

    """

    def __init__(self, *, auth: Literal["basic", "bearer"], app_id: str) -> None:
        self.app_id: str = app_id
        #: The App Connection's id (``sim-<this>``); distinct per simulated printer.
        self.connection_id: str = app_id
        #: The relay URL of this printer (set when its server starts).
        self.relay_url: URL = URL()
        #: Everything the simulator's behaviour depends on; change it at any time.
        self.state: SimulatorState = SimulatorState()
        #: Every request each origin received, in order.
        self.requests: list[RecordedRequest] = []
        self._auth_kind = auth
        self.basic_auth: BasicAuth = BasicAuth(
            f"{SECRET_MARKER}-user-{secrets.token_hex(4)}",
            f"{SECRET_MARKER}-pw-{secrets.token_urlsafe(18)}",
        )
        self.bearer_auth: BearerAuth = BearerAuth(
            f"{SECRET_MARKER}-tok-{secrets.token_urlsafe(24)}"
        )
        self.app_token: str = f"{SECRET_MARKER}-app-{secrets.token_urlsafe(24)}"
        #: The fake printer's files (uploads land here; add files to download).
        self.files: FileStore = FileStore()
        #: Every completed upload, in order.
        self.uploads: list[SimFile] = []
        #: The packaged JPEG frames (loaded off the event loop when the simulator starts).
        self.jpegs: list[bytes] = []
        self.large_jpeg: bytes = b""
        #: When webcam streams were opened (for the 609 rate limit), how many were served,
        #: and how many are being served now (a stream's end is noticed at its next write).
        self.webcam_opens: collections.deque[float] = collections.deque()
        self.webcam_streams: int = 0
        self.webcam_streams_open: int = 0
        self.webcam_part_cache: dict[object, bytes] = {}
        #: Open server-side WebSockets, and every JSON message they received (path, data).
        self.websockets: list[tuple[web.WebSocketResponse, web.Request]] = []
        self.ws_received: list[tuple[str, object]] = []
        #: OctoPrint control commands the fake printer accepted (path, JSON body), in order.
        self.printer_commands: list[tuple[str, dict[str, object]]] = []
        self._webhook_session: aiohttp.ClientSession | None = None

    def play(self, platform: Platform) -> None:
        """Answer the plugin API as the real plugin does on ``platform``.

        ``"octoprint"``, ``"moonraker"``, ``"bambu"``, ``"prusalink"``, ``"elegoo"`` or
        ``"elegoo_cc2"``: its features, version, lights, send-command transport, file roots
        (none on PrusaLink and Elegoo: 788), connection info and cameras (PrusaLink's has
        no stream: 754). Replaces ``state.plugin`` and the webcams of ``state.webcam``.
        """
        settings = platform_settings(platform)
        self.state.plugin = settings
        self.state.webcam.webcams = platform_webcams(platform, settings)
        self.state.webcam.default_index = 0

    @property
    def auth(self) -> BasicAuth | BearerAuth:
        """The credentials the relay accepts."""
        return self.basic_auth if self._auth_kind == "basic" else self.bearer_auth

    def app_connection(self, **overrides: Any) -> AppConnection:
        """An :class:`AppConnection` for this simulated printer (override any field)."""
        fields: dict[str, Any] = {
            "url": self.relay_url,
            "auth": self.auth,
            "app_token": self.app_token,
            "id": "sim-" + self.connection_id,
            "printer_name": self.state.printer_name,
            "local_ip": None,
        }
        fields.update(overrides)
        if "allow_insecure_loopback" not in fields:
            # The relay is on loopback (http, or https with a test CA): the one place an
            # App Connection may leave octoeverywhere.com, and only with this opt-in.
            try:
                fields["allow_insecure_loopback"] = is_loopback_host(URL(str(fields["url"])).host)
            except ValueError:  # a bad url override: let AppConnection name the problem
                fields["allow_insecure_loopback"] = False
        return AppConnection(**fields)

    def relay_status_for(self, request: web.Request) -> int | None:
        """What the relay answers for this printer before the printer sees ``request``."""
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

    async def close_webhook_session(self) -> None:
        """Close the session webhooks are delivered with (if one was opened)."""
        if self._webhook_session is not None:
            await self._webhook_session.close()


def relay_status(status: int) -> web.Response:
    """A bare OctoEverywhere status answer, as the relay sends it."""
    return web.Response(status=status, text=f"OctoEverywhere status {status}")


#: The media type the real OctoEverywhere plugin gives every JSON answer it builds.
PLUGIN_MEDIA_TYPE: Final = "text/json"
#: The plugin's error for a command it could not handle (754; a missing webcam too).
UNKNOWN_COMMAND: Final = "The command path didn't match any known commands."


def plugin_json(body: Any, *, status: int = 200) -> web.Response:
    """JSON as the plugin sends it: ``Content-Type: text/json``."""
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=PLUGIN_MEDIA_TYPE
    )


def plugin_raw_error(status: int, error: str) -> web.Response:
    """A raw plugin endpoint's failure (files/download), as ``BuildRawError`` makes it.

    The plugin status is the HTTP status when it is one (404), else 400 (785, 788...), with
    ``{"Status": ..., "Error": ...}`` as the body.
    """
    http_status = status if 100 <= status <= 599 else 400
    return plugin_json({"Status": status, "Error": error}, status=http_status)


SIM_KEY: Final = web.AppKey("oe_simulator", SimulatorCore)


#: Where the simulator's middleware puts the printer a request is for (many-printer mode).
CORE_KEY: Final = web.RequestKey("oe_simulator_printer", SimulatorCore)


def simulator_of(request: web.Request) -> SimulatorCore:
    """The simulated printer (state, credentials, records) serving ``request``."""
    core = request.get(CORE_KEY)
    return core if core is not None else request.app[SIM_KEY]
