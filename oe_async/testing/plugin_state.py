"""Settable state behind the simulator's plugin API, Gadget and webhooks (pure data).

The platform profiles (:data:`PLATFORMS`, :func:`platform_settings`,
:func:`platform_webcams`) are what the real OctoEverywhere plugin reports on each platform
(its ``*_octoeverywhere`` command handlers and webcam helpers), as ``make
plugin-conformance`` checks them: features, version strings, lights, send-command transport,
file roots, connection info, cameras.
"""

from __future__ import annotations

import secrets
from typing import Any, Final, Literal

import attrs

from oe_async.testing.canary import SECRET_MARKER

__all__ = [
    "PLATFORMS",
    "GadgetSettings",
    "Platform",
    "PluginSettings",
    "WebhookSettings",
    "example_material_system",
    "platform_settings",
    "platform_webcams",
]

#: A platform of the OctoEverywhere plugin (its command handler).
Platform = Literal["octoprint", "moonraker", "bambu", "prusalink", "elegoo", "elegoo_cc2"]
PLATFORMS: Final[tuple[Platform, ...]] = (
    "octoprint",
    "moonraker",
    "bambu",
    "prusalink",
    "elegoo",
    "elegoo_cc2",
)
ALL_TRANSPORTS: Final = ("http", "websocket", "mqtt")


def example_material_system() -> dict[str, Any]:
    """A one-AMS-slot, one-nozzle material system as the documentation shows it."""
    return {
        "Capabilities": {
            "SupportsMultiMaterial": True,
            "SupportsMultiTool": False,
            "SupportsSourceRouting": True,
            "SupportsDrying": False,
        },
        "Sources": [
            {
                "Id": "bambu-ams-0-source-0",
                "Index": 0,
                "Name": "AMS 1 Slot 1",
                "UnitId": "bambu-ams-0",
                "Position": 0,
                "IsEmpty": False,
                "Material": {"Type": "PLA", "ColorHex": "FF6600", "RemainingPercent": 73.0},
            }
        ],
        "Tools": [{"Id": "tool-0", "Index": 0, "Name": "Nozzle", "IsActive": True}],
        "Units": [{"Id": "bambu-ams-0", "Index": 0, "Name": "AMS 1", "HumidityPercent": 36.0}],
        "Routes": [{"SourceId": "bambu-ams-0-source-0", "ToolId": "tool-0", "State": "loaded"}],
    }


def _secret(kind: str) -> str:
    return f"{SECRET_MARKER}-{kind}-{secrets.token_hex(6)}"


def _serial(prefix: str) -> str:
    """A serial number that carries the secret marker (the library must never show one)."""
    return f"{prefix}-{SECRET_MARKER}-{secrets.token_hex(3)}"


def _connection(**fields: Any) -> dict[str, Any]:
    """A ``get-connection-info`` result: the plugin always sends all seven keys."""
    info: dict[str, Any] = dict.fromkeys(
        ("LocalIp", "LocalPort", "AccessCode", "SerialNumber", "ApiKey", "Username", "Password")
    )
    info.update(fields)
    return info


@attrs.define(kw_only=True)
class PluginSettings:
    """The printer as OctoEverywhere's plugin reports it (``sim.state.plugin``).

    The defaults play a printer with every control (Moonraker's feature set), every
    send-command transport and every file root, reporting itself as OctoPrint; a
    ``Simulator(platform=...)`` plays one platform as the real plugin does
    (:func:`platform_settings`).
    """

    #: The plugin platform played (None: the simulator's any-feature printer).
    platform: Platform | None = None
    job_state: str = "printing"
    sub_state: str | None = None
    error: str | None = None
    #: The ``Features`` bitmask (63: every control, print start included).
    features: int = 63
    platform_version: str = "OctoPrint 1.10.3"
    #: The lights ``status`` reports; None when the platform cannot tell (OctoPrint, PrusaLink).
    lights: list[dict[str, Any]] | None = attrs.field(
        factory=lambda: [{"Name": "chamber", "On": True}]
    )
    material_system: dict[str, Any] | None = attrs.field(factory=example_material_system)
    #: The send-command transports the printer takes (a platform takes one).
    transports: tuple[str, ...] = ALL_TRANSPORTS
    #: The file roots (None: no file commands, 788), the writable ones, and those with details.
    file_roots: tuple[str, ...] | None = ("gcode", "config", "logs")
    writable_roots: tuple[str, ...] = ("gcode", "config")
    details_roots: tuple[str, ...] = ("gcode",)
    #: Whether ``start`` works here (Elegoo: 788).
    can_start: bool = True
    #: What ``get-connection-info`` answers (the credentials carry SECRET_MARKER).
    connection: dict[str, Any] = attrs.field(
        factory=lambda: _connection(
            LocalIp="127.0.0.1",
            LocalPort=80,
            AccessCode=_secret("access-code"),
            SerialNumber=_serial("01S00C"),
            ApiKey=_secret("printer-api-key"),
        )
    )
    #: The webcam the plugin uses by default, by name (``set-default-webcam``).
    default_webcam_name: str | None = None
    #: Force a command's failure: {"pause": (786, "Not printing")}; "files/download" gets the
    #: plugin's raw error (785 -> HTTP 400 with {"Status": 785}), the rest an envelope.
    failures: dict[str, tuple[int, str]] = attrs.field(factory=dict)
    #: The envelope key for results; "Result:" reproduces a typo in one public example.
    result_key: str = "Result"
    #: Every command received: (name, JSON body or query).
    commands: list[tuple[str, Any]] = attrs.field(factory=list)

    def secrets(self) -> tuple[str, ...]:
        """The printer credentials ``get-connection-info`` hands out (for leak checks)."""
        keys = ("AccessCode", "ApiKey", "Username", "Password")
        return tuple(str(self.connection[k]) for k in keys if self.connection.get(k))


def platform_settings(platform: Platform) -> PluginSettings:
    """What the real plugin reports on ``platform`` (its command handler's answers)."""
    if platform == "octoprint":
        return PluginSettings(
            platform=platform,
            features=32,
            platform_version="1.11.2",
            lights=None,
            transports=("http",),
            file_roots=("gcode", "logs"),
            writable_roots=("gcode",),
            connection=_connection(LocalIp="192.168.1.50", LocalPort=5000),
        )
    if platform == "moonraker":
        return PluginSettings(
            platform=platform,
            platform_version="1.0.0",
            lights=[{"Name": "caselight", "On": True}],
            transports=("websocket",),
            connection=_connection(LocalIp="192.168.1.51", LocalPort=7125),
        )
    if platform == "bambu":
        return PluginSettings(
            platform=platform,
            features=33,
            platform_version="01.08.02.00-BambuPrinters.X1C",
            transports=("mqtt",),
            file_roots=("gcode",),
            writable_roots=("gcode",),
            connection=_connection(
                LocalIp="192.168.1.60",
                AccessCode=_secret("access-code"),
                SerialNumber=_serial("01S00C"),
            ),
        )
    if platform == "prusalink":
        return PluginSettings(
            platform=platform,
            features=32,
            platform_version="PrusaLink 2.1.2-Prusa MK4",
            lights=None,
            transports=("http",),
            file_roots=None,
            connection=_connection(
                LocalIp="192.168.1.70",
                LocalPort=80,
                ApiKey=_secret("prusalink-key"),
                Username=_secret("prusalink-user"),
                Password=_secret("prusalink-password"),
            ),
        )
    if platform == "elegoo":
        return PluginSettings(
            platform=platform,
            features=5,
            platform_version="Elegoo-Centauri",
            transports=("websocket",),
            file_roots=None,
            can_start=False,
            connection=_connection(LocalIp="192.168.1.80", LocalPort=3030),
        )
    if platform == "elegoo_cc2":
        return PluginSettings(
            platform=platform,
            features=23,
            platform_version="Centauri Carbon 2-1.2.3-V1.0",
            lights=[{"Name": "chamber", "On": False}],
            transports=("mqtt",),
            file_roots=None,
            can_start=False,
            connection=_connection(
                LocalIp="192.168.1.81",
                LocalPort=1883,
                AccessCode=_secret("access-code"),
                SerialNumber=_serial("CC2E00"),
            ),
        )
    raise ValueError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")


def _cam(name: str, snapshot: str | None, stream: str | None, **flags: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "FlipH": flags.get("FlipH", False),
        "FlipV": flags.get("FlipV", False),
        "Rotation": flags.get("Rotation", 0),
        "Enabled": True,
        "SnapshotUrl": snapshot,
        "StreamUrl": stream,
    }


def platform_webcams(platform: Platform, settings: PluginSettings) -> list[dict[str, Any]]:
    """The cameras the real plugin lists on ``platform`` (``webcam/list``)."""
    ip = settings.connection["LocalIp"]
    if platform == "octoprint":
        return [
            _cam(
                "Classic",
                f"http://{ip}/webcam/?action=snapshot",
                f"http://{ip}/webcam/?action=stream",
                FlipV=True,
                Rotation=90,
            )
        ]
    if platform == "moonraker":
        return [
            _cam(
                "Nozzle",
                f"http://{ip}/webcam/?action=snapshot",
                f"http://{ip}/webcam/?action=stream",
            ),
            _cam(
                "Chamber",
                f"http://{ip}/webcam2/?action=snapshot",
                f"http://{ip}/webcam2/?action=stream",
                Rotation=180,
            ),
        ]
    if platform == "bambu":
        # The X1's RTSP URL carries the LAN access code: a secret in a URL.
        code = settings.connection["AccessCode"]
        return [_cam("Bambu Cam", None, f"rtsps://bblp:{code}@{ip}:322/streaming/live/1")]
    if platform == "prusalink":  # a snapshot and no stream: webcam/stream answers 754
        return [_cam("PrusaLink Camera", f"http://{ip}:80/api/v1/cameras/snap", None)]
    if platform == "elegoo":
        return [_cam("Elegoo Cam", None, f"jmpeg://{ip}:3031/video?timestamp=1")]
    return [_cam("Elegoo CC2 Cam", None, f"jmpeg://{ip}:8080/?action=stream")]


@attrs.define(kw_only=True)
class GadgetSettings:
    """What the Gadget App API answers (``sim.state.gadget``)."""

    state: int = 3
    status: str | None = "Looking good"
    status_color: str = "g"
    rating: int | None = 9


@attrs.define(kw_only=True)
class WebhookSettings:
    """The registered notification webhook (``sim.state.webhook``)."""

    url: str | None = None
    event_types: list[int] = attrs.field(factory=list)
    secret_key: str = attrs.field(
        factory=lambda: f"{SECRET_MARKER}-whsec-{secrets.token_urlsafe(16)}"
    )
    printer_id: str = "sim-printer-id"
    #: Every delivery: (event type, status code answered, or None when the call failed).
    deliveries: list[tuple[int, int | None]] = attrs.field(factory=list)
