"""attrs models for the printer-agnostic plugin API (status, files, controls, send-command).

Decoding is lenient: unknown keys are ignored (or kept in ``extra`` where the API documents
platform-specific keys), missing optional keys become None, an unknown job state becomes
``JobState.UNKNOWN`` and unknown feature bits are kept. The shapes are the real plugin's
(``octoeverywhere/commandhandler.py`` and each platform's command handler in
QuinnDamerell/OctoPrint-OctoEverywhere), checked by ``make plugin-conformance``.
"""

from __future__ import annotations

import base64
import enum
import json as jsonlib
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

import attrs

from ._convert import api_model, converter, wire
from .errors import InvalidArgumentError
from .models import WebcamList

__all__ = [
    "CommandResult",
    "CurrentPrint",
    "Features",
    "FileDetails",
    "FileEntry",
    "GadgetSummary",
    "HttpCommand",
    "HttpReply",
    "JobState",
    "JobStatus",
    "Light",
    "MqttCommand",
    "MqttMessage",
    "OctoEverywhereStatus",
    "PluginConnectionInfo",
    "PluginFile",
    "PrinterStatus",
    "Temps",
    "WebSocketCommand",
]


class JobState(enum.StrEnum):
    """The printer's common job state; ``UNKNOWN`` for values this version does not know."""

    IDLE = "idle"
    WARMING_UP = "warmingup"
    PRINTING = "printing"
    PAUSED = "paused"
    RESUMING = "resuming"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> JobState:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        return cls.UNKNOWN


class Features(enum.IntFlag):
    """Which printer controls the platform supports (``Features`` bitmask).

    Bits this version does not know are kept (``Features(96) & ~Features.PRINT_START``).
    """

    NONE = 0
    LIGHT = 1
    AXIS_MOVEMENT = 2
    HOMING = 4
    EXTRUSION = 8
    TEMPERATURE = 16
    PRINT_START = 32


@api_model
@attrs.frozen(kw_only=True)
class Temps:
    """Temperatures in Celsius (targets of 0 usually mean off)."""

    bed_actual: float | None = None
    bed_target: float | None = None
    hotend_actual: float | None = None
    hotend_target: float | None = None
    chamber_actual: float | None = None
    chamber_target: float | None = None


@api_model
@attrs.frozen(kw_only=True)
class CurrentPrint:
    """The current (or most recent) print."""

    progress: float | None = None
    duration_sec: int | None = None
    time_left_sec: int | None = None
    file_name: str | None = None
    est_total_filament_mm: int | None = wire("EstTotalFilUsedMm", default=None)
    est_total_filament_mg: int | None = wire("EstTotalFilWeightMg", default=None)
    current_layer: int | None = None
    total_layers: int | None = None
    temps: Temps = attrs.field(factory=Temps)


@api_model
@attrs.frozen(kw_only=True)
class Light:
    """A controllable light; pass its ``name`` to ``set_light``."""

    name: str
    on: bool = False


@api_model
@attrs.frozen(kw_only=True)
class JobStatus:
    """The job part of ``status``.

    ``lights`` is None when the platform cannot tell (the plugin sends ``null``, or no key:
    OctoPrint, PrusaLink), ``[]`` when it knows there are none, else each controllable
    light. ``material_system`` is the raw ``MaterialSystem`` object (sources, tools, units,
    routes) when asked for with ``include_material_system=True``; None otherwise (also when
    the platform cannot report one).
    """

    state: JobState = JobState.UNKNOWN
    sub_state: str | None = None
    error: str | None = None
    lights: list[Light] | None = None
    current_print: CurrentPrint = attrs.field(factory=CurrentPrint)
    material_system: dict[str, Any] | None = None


@api_model
@attrs.frozen(kw_only=True)
class GadgetSummary:
    """Gadget (AI failure detection) as the plugin sees it."""

    last_score: float | None = None
    score_history: list[float] = attrs.field(factory=list)
    time_since_last_score_sec: float | None = None
    interval_sec: float | None = None
    is_suppressed: bool | None = None
    time_since_last_warn_sec: float | None = None
    time_since_last_pause_sec: float | None = None


@api_model
@attrs.frozen(kw_only=True)
class OctoEverywhereStatus:
    """OctoEverywhere's own view: the print id, when it started, Gadget."""

    most_recent_print_id: str | None = wire("MostRecentPrintIdStr", default=None)
    print_start_time_sec: float | None = None
    gadget: GadgetSummary | None = None


@api_model
@attrs.frozen(kw_only=True)
class PrinterStatus:
    """The printer-agnostic status (``GET status``)."""

    job: JobStatus = wire("JobStatus", factory=JobStatus)
    octoeverywhere: OctoEverywhereStatus | None = wire("OctoEverywhereStatus", default=None)
    platform_version: str | None = None
    features: Features = Features.NONE
    webcams: WebcamList | None = wire("ListWebcams", default=None)

    def supports(self, feature: Features) -> bool:
        """True when every bit of ``feature`` is advertised."""
        return (self.features & feature) == feature


#: Keys of a file entry that have fields; every other key is kept in ``extra``.
_FILE_KEYS: Final = frozenset(
    {
        "Type",
        "Name",
        "VirtualPath",
        "PlatformPath",
        "SizeBytes",
        "ModifiedTimeSec",
        "Permissions",
        "Children",
    }
)


@attrs.frozen(kw_only=True)
class FileEntry:
    """One file or folder of ``files/list``; platform-specific keys are kept in ``extra``."""

    type: str
    name: str
    virtual_path: str
    platform_path: str | None = None
    size_bytes: int | None = None
    modified_time_sec: float | None = None
    permissions: str | None = None
    children: list[FileEntry] = attrs.field(factory=list)
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_folder(self) -> bool:
        """True for folders."""
        return self.type.lower() == "folder"

    def walk(self) -> list[FileEntry]:
        """Return this entry and every descendant, depth first."""
        out = [self]
        for child in self.children:
            out += child.walk()
        return out


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _structure_file_entry(value: Any, _: Any) -> FileEntry:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a file entry object, got {type(value).__name__}")
    name = value.get("Name")
    virtual_path = value.get("VirtualPath")
    if not isinstance(name, str) or not isinstance(virtual_path, str):
        raise KeyError("Name/VirtualPath")
    children = value.get("Children") or []
    if not isinstance(children, list):
        raise TypeError("Children must be a list")
    size = value.get("SizeBytes")
    modified = value.get("ModifiedTimeSec")
    permissions = value.get("Permissions")
    return FileEntry(
        type=str(value.get("Type") or "file"),
        name=name,
        virtual_path=virtual_path,
        platform_path=value.get("PlatformPath")
        if isinstance(value.get("PlatformPath"), str)
        else None,
        size_bytes=int(size)
        if isinstance(size, int | float) and not isinstance(size, bool)
        else None,
        modified_time_sec=float(modified)
        if isinstance(modified, int | float) and not isinstance(modified, bool)
        else None,
        permissions=str(permissions) if permissions is not None else None,
        children=converter.structure(children, list[FileEntry]),
        extra={k: v for k, v in value.items() if k not in _FILE_KEYS},
    )


def _structure_file_list(value: Any, _: Any) -> list[FileEntry]:
    """Lists of entries skip one that cannot be decoded instead of failing whole."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    entries = []
    for item in value:
        try:
            entries.append(_structure_file_entry(item, FileEntry))
        except (KeyError, TypeError, ValueError):
            continue
    return entries


converter.register_structure_hook(FileEntry, _structure_file_entry)
converter.register_structure_hook_func(lambda t: t == list[FileEntry], _structure_file_list)


@api_model
@attrs.frozen(kw_only=True)
class PluginFile:
    """A file the plugin API uploaded, deleted or started printing.

    ``virtual_path`` is where the file is now (the printer may rename an upload: Moonraker
    does, and the plugin reports the stored name); ``printer_response`` is the printer's
    own answer, decoded JSON when it was JSON (a string otherwise, None when there was
    none). ``size_bytes`` is set for uploads only.
    """

    virtual_path: str
    platform_path: str | None = None
    size_bytes: int | None = None
    printer_response: Any = None


@api_model
@attrs.frozen(kw_only=True)
class FileDetails:
    """A file's details (``files/details``): what the platform knows, the rest None.

    Bambu Lab reports only the size and time; Moonraker the slicer's metadata for
    ``gcode/`` files; OctoPrint its analysis. ``platform_details`` is the platform's own
    metadata object as it sent it (Moonraker's ``server.files.metadata``, OctoPrint's file
    object), None when it has none.
    """

    virtual_path: str
    platform_path: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    modified_time_sec: int | None = None
    est_print_time_sec: int | None = None
    est_filament_used_mm: int | None = None
    est_filament_weight_mg: int | None = None
    layer_count: int | None = None
    layer_height_mm: float | None = None
    first_layer_height_mm: float | None = None
    object_height_mm: float | None = None
    nozzle_diameter_mm: float | None = None
    filament_type: str | None = None
    filament_name: str | None = None
    bed_temp_c: float | None = wire("BedTempC", default=None)
    hotend_temp_c: float | None = wire("HotendTempC", default=None)
    chamber_temp_c: float | None = wire("ChamberTempC", default=None)
    print_start_time_sec: int | None = None
    slicer: str | None = None
    slicer_version: str | None = None
    thumbnail_count: int | None = None
    platform_details: Any = attrs.field(default=None, repr=False)


def _blank_is_none(value: str | None) -> str | None:
    """The plugin's interface says unsupported values may be empty strings: None here."""
    return value if value else None


@api_model
@attrs.frozen(kw_only=True, repr=False)
class PluginConnectionInfo:
    """How the plugin reaches the printer (``get-connection-info``), for local use.

    ``local_ip``/``local_port`` are the printer's LAN address as the plugin knows it; the
    rest are the printer's own credentials where the platform has them (Bambu Lab: the
    LAN ``access_code`` and ``serial_number``; Elegoo Centauri Carbon 2: the same;
    PrusaLink: ``api_key``, ``username``, ``password``; OctoPrint, Moonraker and Elegoo
    only the address). Fields the platform does not have are None (an empty string from
    the plugin counts as none). The credentials are secrets: ``repr()`` shows only whether
    each is set, and :func:`oe_async.diagnostics.redact` hides them; keep them on the
    device that asked, and use them only for the printer's own LAN address.
    """

    local_ip: str | None = attrs.field(default=None, converter=_blank_is_none)
    local_port: int | None = None
    serial_number: str | None = attrs.field(default=None, converter=_blank_is_none)
    access_code: str | None = attrs.field(default=None, converter=_blank_is_none)
    api_key: str | None = attrs.field(default=None, converter=_blank_is_none)
    username: str | None = attrs.field(default=None, converter=_blank_is_none)
    password: str | None = attrs.field(default=None, converter=_blank_is_none)

    def __repr__(self) -> str:
        shown = [
            f"local_ip={self.local_ip!r}",
            f"local_port={self.local_port!r}",
            f"serial_number={self.serial_number!r}",
        ]
        shown += [
            f"{name}={'***' if getattr(self, name) else None}"
            for name in ("access_code", "api_key", "username", "password")
        ]
        return f"PluginConnectionInfo({', '.join(shown)})"

    __str__ = __repr__


# ---------------------------------------------------------------------------- send-command

#: The longest ``TimeoutSec`` the plugin accepts for a send-command (30 minutes).
MAX_COMMAND_TIMEOUT_SEC: Final = 1800


@attrs.frozen(kw_only=True, repr=False)
class HttpCommand:
    """A request to the printer's own HTTP API, sent by the plugin on the printer's LAN.

    For OctoPrint and PrusaLink (the platforms whose ``send-command`` transport is http).
    The plugin adds the printer's local credentials (OctoPrint's API key, PrusaLink's
    digest auth), so ``path`` must be the printer's own API path, starting with a single
    ``/`` (an absolute URL is refused, by us and by the plugin). The body is one of
    ``json`` (an object: the plugin sends it with ``Content-Type: application/json``
    unless ``headers`` says otherwise), ``text`` (sent as UTF-8) or ``data`` (bytes); set
    the content type of ``text``/``data`` in ``headers``. ``repr()`` shows header names,
    never their values.
    """

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    json: Mapping[str, Any] | None = None
    text: str | None = None
    data: bytes | None = None

    transport: ClassVar[Literal["http"]] = "http"

    def __attrs_post_init__(self) -> None:
        path = self.path
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise InvalidArgumentError(
                "HttpCommand.path must be the printer's own API path, starting with one '/' "
                "(the plugin adds the printer's credentials, so it only calls the printer)"
            )
        if "://" in path:
            raise InvalidArgumentError("HttpCommand.path must be a path, not an absolute URL")
        if not isinstance(self.method, str) or not self.method.strip():
            raise InvalidArgumentError("HttpCommand.method must be a non-empty string")
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise InvalidArgumentError("HttpCommand.headers must map str names to str values")
        if sum(body is not None for body in (self.json, self.text, self.data)) > 1:
            raise InvalidArgumentError("HttpCommand takes one body: json, text or data")
        if self.json is not None and not isinstance(self.json, Mapping):
            raise InvalidArgumentError(
                "HttpCommand.json must be a JSON object (send other JSON as text=)"
            )
        if self.text is not None and not isinstance(self.text, str):
            raise InvalidArgumentError("HttpCommand.text must be a str")
        if self.data is not None and not isinstance(self.data, bytes | bytearray):
            raise InvalidArgumentError("HttpCommand.data must be bytes")

    def __repr__(self) -> str:
        return f"HttpCommand({self.method} {self.path!r}, headers={sorted(self.headers)})"

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this request (no ``TransportType``)."""
        out: dict[str, Any] = {
            "Path": self.path,
            "Method": self.method,
            "Request": dict(self.json) if self.json is not None else {},
        }
        if self.headers:
            out["Headers"] = dict(self.headers)
        if self.text is not None:
            out["BodyText"] = self.text
        if self.data is not None:
            out["BodyBase64"] = base64.b64encode(self.data).decode("ascii")
        return out


@attrs.frozen(kw_only=True)
class WebSocketCommand:
    """A command on the printer's own WebSocket API, sent by the plugin.

    Moonraker: a JSON-RPC ``method`` (``"printer.objects.query"``) with ``params``;
    Elegoo (SDCP): an integer command id as ``method`` (``1`` asks for attributes) with
    ``params`` as the command's ``Data``.
    """

    method: str | int
    params: Mapping[str, Any] = attrs.field(factory=dict)

    transport: ClassVar[Literal["websocket"]] = "websocket"

    def __attrs_post_init__(self) -> None:
        method = self.method
        if isinstance(method, bool) or not isinstance(method, str | int) or method == "":
            raise InvalidArgumentError(
                "WebSocketCommand.method must be a JSON-RPC method name (Moonraker) or an "
                "integer command id (Elegoo SDCP)"
            )
        if not isinstance(self.params, Mapping):
            raise InvalidArgumentError("WebSocketCommand.params must be a mapping")

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this command (no ``TransportType``)."""
        return {"Request": {"Method": self.method, "Params": dict(self.params)}}


@attrs.frozen(kw_only=True)
class MqttCommand:
    """A message to the printer's own MQTT broker, published by the plugin.

    Bambu Lab: ``request`` is the whole JSON payload, sent as it is to
    ``device/<serial>/request`` (``{"pushing": {"sequence_id": "0", "command":
    "pushall"}}``). Elegoo Centauri Carbon 2: ``{"Method": <int>, "Params": {...}}``.
    """

    request: Mapping[str, Any]

    transport: ClassVar[Literal["mqtt"]] = "mqtt"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.request, Mapping):
            raise InvalidArgumentError("MqttCommand.request must be a mapping (a JSON object)")

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this message (no ``TransportType``)."""
        return {"Request": dict(self.request)}


@attrs.frozen(kw_only=True)
class MqttMessage:
    """One MQTT message as the plugin echoes it (topic, native payload, QoS, retain)."""

    topic: str | None = None
    payload: Any = None
    qos: int = 0
    retain: bool = False


@attrs.frozen(kw_only=True, repr=False)
class HttpReply:
    """The printer's answer to an :class:`HttpCommand`.

    ``body`` holds the bytes however the plugin carried them (``BodyAsJson``, as text, or
    base64); ``json`` is the decoded JSON body when it was JSON (else None); ``text`` the
    body as UTF-8. ``repr()`` leaves out the headers and body (they may carry cookies).
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    url: str | None = None
    body: bytes = b""
    json: Any = None

    def __repr__(self) -> str:
        return f"HttpReply(status={self.status}, {len(self.body)} bytes)"

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def _http_reply(response: Any) -> HttpReply | None:
    if not isinstance(response, Mapping):
        return None
    status = response.get("StatusCode")
    if isinstance(status, bool) or not isinstance(status, int):
        return None
    headers = response.get("Headers")
    body: bytes = b""
    json_value: Any = None
    if response.get("BodyAsJson") is not None:
        json_value = response["BodyAsJson"]
        body = jsonlib.dumps(json_value).encode()
    elif isinstance(response.get("BodyAsText"), str):
        body = response["BodyAsText"].encode()
    elif isinstance(response.get("BodyAsBase64"), str):
        try:
            body = base64.b64decode(response["BodyAsBase64"], validate=True)
        except ValueError:
            body = b""
    url = response.get("Url")
    return HttpReply(
        status=status,
        headers={str(k): str(v) for k, v in headers.items()}
        if isinstance(headers, Mapping)
        else {},
        url=url if isinstance(url, str) else None,
        body=body,
        json=json_value,
    )


def _mqtt_message(value: Any) -> MqttMessage | None:
    if not isinstance(value, Mapping) or "Payload" not in value:
        return None
    topic, qos, retain = value.get("Topic"), value.get("Qos"), value.get("Retain")
    return MqttMessage(
        topic=topic if isinstance(topic, str) else None,
        payload=value.get("Payload"),
        qos=qos if isinstance(qos, int) and not isinstance(qos, bool) else 0,
        retain=retain if isinstance(retain, bool) else False,
    )


@attrs.frozen(kw_only=True, repr=False)
class CommandResult:
    """What ``send-command`` answered.

    ``response`` is the printer's native answer (for ``http``, the plugin's description of
    it; prefer :attr:`http`), None when nothing was awaited (``response_received`` is
    False after ``wait_for_response=False``). ``is_error`` is the plugin's best-effort
    flag for a failure the printer reported in its answer (an HTTP status of 400 or more,
    a JSON-RPC or SDCP error): the command reached the printer, so nothing is raised. The
    typed views: :attr:`http` for ``http`` (status, headers, body), :attr:`mqtt` and
    :attr:`mqtt_request` for ``mqtt`` (topic, payload, QoS, retain).
    """

    transport: Literal["http", "websocket", "mqtt"] | str
    response_received: bool = True
    is_error: bool = False
    response: Any = None
    request: Any = None
    wait_for_response: bool | None = None
    timeout_sec: int | None = None

    def __repr__(self) -> str:
        return (
            f"CommandResult(transport={self.transport!r}, "
            f"response_received={self.response_received}, is_error={self.is_error})"
        )

    @property
    def http(self) -> HttpReply | None:
        """The printer's HTTP answer (``http`` transport), else None."""
        return _http_reply(self.response) if self.transport == "http" else None

    @property
    def mqtt(self) -> MqttMessage | None:
        """The MQTT message that answered (``mqtt`` transport, when one was awaited)."""
        return _mqtt_message(self.response) if self.transport == "mqtt" else None

    @property
    def mqtt_request(self) -> MqttMessage | None:
        """The MQTT message the plugin published (``mqtt`` transport), else None."""
        return _mqtt_message(self.request) if self.transport == "mqtt" else None


def _structure_command_result(value: Any, _: Any) -> CommandResult:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a send-command result object, got {type(value).__name__}")
    transport = value.get("TransportType")
    if not isinstance(transport, str):
        raise KeyError("TransportType")
    received, is_error = value.get("ResponseReceived", True), value.get("IsError", False)
    wait, timeout = value.get("WaitForResponse"), value.get("TimeoutSec")
    return CommandResult(
        transport=transport,
        response_received=received if isinstance(received, bool) else True,
        is_error=is_error if isinstance(is_error, bool) else False,
        response=value.get("Response"),
        request=value.get("Request"),
        wait_for_response=wait if isinstance(wait, bool) else None,
        timeout_sec=timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else None,
    )


converter.register_structure_hook(CommandResult, _structure_command_result)
