"""The printer-agnostic plugin command API (``/octoeverywhere-command-api/``): ``printer.plugin``.

One API for every printer OctoEverywhere supports. The wire format (the ``Status``
envelope, raw endpoints' JSON error bodies) is decoded by :mod:`oe_async._plugin_wire`;
file transfers use :class:`oe_async.transfer.Files`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from ._convert import structure, structure_list
from ._funnel import MISSING, Funnel
from ._plugin_wire import (
    MAX_ENVELOPE_SIZE,
    PLUGIN_PREFIX,
    content_error,
    plugin_error_from_http,
    unwrap_envelope,
)
from ._redact import KnownSecrets
from .errors import (
    InvalidArgumentError,
    PrinterHTTPError,
    UnexpectedResponseError,
    UnsupportedOnPlatformError,
)
from .models import WebcamList
from .plugin_commands import (
    MAX_COMMAND_TIMEOUT_SEC,
    CommandResult,
    HTTPCommand,
    MQTTCommand,
    WebSocketCommand,
)
from .plugin_models import (
    Features,
    FileDetails,
    FileEntry,
    PluginConnectionInfo,
    PluginFile,
    PrinterStatus,
)
from .retry import RetryPolicy
from .transfer import DownloadStream, Files, ProgressCallback, UploadSource

__all__ = ["PLUGIN_PREFIX", "PluginAPI", "plugin_error_from_http", "unwrap_envelope"]

DOWNLOAD_PATH: Final = PLUGIN_PREFIX + "files/download"
_AXES: Final = frozenset({"X", "Y", "Z"})
#: A command's per-call ``(timeout, retry)``, or None for the client's defaults.
_IO = tuple[float | aiohttp.ClientTimeout | None, RetryPolicy | None] | None
_ROOTS: Final = frozenset({"gcode", "config", "logs"})
MAX_BED_C: Final = 75.0
MAX_CHAMBER_C: Final = 75.0
MAX_TOOL_C: Final = 260.0
#: The most a smart pause may lift Z or retract (our bound: the plugin has none).
MAX_PAUSE_MM: Final = 100
#: Seconds a call waits beyond a command's own time on the printer (the plugin answers only
#: when the printer has: Moonraker's G28 waits up to 120 s, a print start up to 60 s).
HOME_TIMEOUT: Final = 135.0
START_TIMEOUT: Final = 75.0
COMMAND_TIMEOUT_MARGIN: Final = 15
#: A send-command's transports, as the plugin names them.
_COMMANDS: Final = (HTTPCommand, WebSocketCommand, MQTTCommand)


def _number(
    name: str, value: object, *, low: float | None = None, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidArgumentError(f"{name} must be between {low:g} and {high:g} (got {value:g})")
    return float(value)


def _integer(name: str, value: object, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}")
    return value


def _whole_mm(name: str, value: object, *, high: int) -> int:
    """Millimetres the plugin declares as int: whole numbers only (5 or 5.0, not 2.5)."""
    number = _number(name, value, low=0, high=high)
    if not number.is_integer():
        raise InvalidArgumentError(
            f"{name} must be a whole number of millimetres (the plugin takes an int; "
            f"got {number:g}): round it as suits your printer"
        )
    return int(number)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False")
    return value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    return value


def _maybe(check: Callable[..., object], name: str, value: object, **bounds: Any) -> object:
    """Check an optional argument; None (leave the plugin's default) passes through."""
    return None if value is None else check(name, value, **bounds)


def _body(**fields: object) -> dict[str, object]:
    """A command body from the fields the caller set (None means: leave the plugin default)."""
    return {key: value for key, value in fields.items() if value is not None}


def _timeout_sec(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_COMMAND_TIMEOUT_SEC
    ):
        raise InvalidArgumentError(
            f"timeout_sec must be a whole number of seconds from 1 to {MAX_COMMAND_TIMEOUT_SEC}"
        )
    return value


def _check_command(command: object) -> dict[str, Any]:
    """The send-command fields for a request (each class checked its own arguments)."""
    if not isinstance(command, _COMMANDS):
        raise InvalidArgumentError(
            "command must be an HTTPCommand, a WebSocketCommand or an MQTTCommand"
        )
    return {"TransportType": command.transport, **command.payload()}


def _entries(result: Any) -> list[FileEntry]:
    """``files/list`` answers a list of roots, one root folder, or an object holding a list."""
    if isinstance(result, Mapping) and "Name" not in result:
        lists = [v for v in result.values() if isinstance(v, list)]
        result = lists[0] if len(lists) == 1 else []
    if isinstance(result, Mapping):
        result = [result]
    return structure_list(result, FileEntry, what="files/list answer")


class PluginAPI:
    """OctoEverywhere's printer-agnostic command API: ``printer.plugin``.

    One API for OctoPrint, Klipper/Moonraker, Bambu Lab, PrusaLink, Elegoo and every other
    printer OctoEverywhere supports. Arguments are checked before anything is sent
    (:class:`oe_async.InvalidArgumentError`); a control whose feature bit the last
    :meth:`status` lacked raises :class:`oe_async.UnsupportedOnPlatformError` without
    sending. Failures the plugin reports raise :class:`oe_async.PluginCommandError`
    subclasses (785-789...), the relay's own raise :class:`oe_async.RelayError`.

    Every command takes ``timeout=`` (seconds or ``aiohttp.ClientTimeout``: the whole
    call's deadline, retries included) and ``retry=`` (a :class:`oe_async.RetryPolicy`;
    commands that change the printer are never repeated).
    """

    def __init__(self, funnel: Funnel, files: Files) -> None:
        self._funnel = funnel
        self._files = files
        #: The last :meth:`status`, used for the feature checks (None before the first).
        self.last_status: PrinterStatus | None = None

    def __repr__(self) -> str:
        return f"<PluginAPI of {self._funnel!r}>"

    async def _run(
        self,
        method: str,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, object] | None = None,
        io: _IO = None,
    ) -> Any:
        """Run a JSON command through the funnel and return its ``Result``.

        Commands change the printer: only reads (GET) are retried (unless ``retry`` says
        otherwise, which only ever repeats what may be repeated).
        """
        json = MISSING if method == "GET" else (body or None)  # None: no body at all
        timeout, retry = io if io is not None else (None, None)
        call = self._funnel.call(
            method, PLUGIN_PREFIX + name, params=params, json=json, timeout=timeout, retry=retry
        )
        try:
            data = await self._funnel.json(call)
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise
        return unwrap_envelope(data, command=name, secrets=self._funnel.secrets)

    async def _command(
        self,
        name: str,
        body: Mapping[str, object] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        io: _IO = None,
    ) -> Any:
        return await self._run("POST", name, body=body, params=params, io=io)

    def _require(self, feature: Features, action: str) -> None:
        status = self.last_status
        if status is not None and not status.supports(feature):
            raise UnsupportedOnPlatformError(
                f"This printer does not support {action} (its last status lacks the "
                f"{feature.name} feature)",
                plugin_status=788,
            )

    # ------------------------------------------------------------------ status

    async def status(
        self,
        *,
        include_material_system: bool = False,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> PrinterStatus:
        """The printer-agnostic status; remembered in :attr:`last_status` for feature checks."""
        params = (
            {"IncludeMaterialSystem": "true"}
            if _flag("include_material_system", include_material_system)
            else None
        )
        result = await self._run("GET", "status", params=params, io=(timeout, retry))
        status = structure(result, PrinterStatus, what="plugin status")
        self.last_status = status
        return status

    async def webcams(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> WebcamList:
        """The printer's webcams (name, flips, rotation, URLs, default index).

        Stream one with ``printer.webcam.frames(index=...)``.

        Raises:
            PluginCommandError: the plugin answered a failure ``Status``.

        """
        result = await self._run("GET", "webcam/list", io=(timeout, retry))
        return structure(result, WebcamList, what="webcam list")

    # ------------------------------------------------------------------ controls

    async def pause(
        self,
        *,
        smart_pause: bool | None = None,
        disable_hotend: bool | None = None,
        disable_bed: bool | None = None,
        z_lift_mm: float | None = None,
        retract_filament_mm: float | None = None,
        suppress_notification: bool | None = None,
        show_smart_pause_popup: bool | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Pause the print; with ``smart_pause`` also cool, lift and retract as asked.

        Options left as None keep the plugin's defaults (no smart pause; for a smart
        pause: hotend off, bed on, no lift or retraction, a popup, no notification).
        ``z_lift_mm`` and ``retract_filament_mm`` are whole millimetres, 0-100: the plugin
        takes ints, so 5.0 is sent as 5 and 2.5 is refused (the bound is ours). Only
        OctoPrint's smart pause uses them today.

        Raises:
            InvalidPrinterStateError: the printer is not printing (786).
            InvalidArgumentError: an argument out of range (nothing is sent).

        """
        body = _body(
            SmartPause=_maybe(_flag, "smart_pause", smart_pause),
            DisableHotend=_maybe(_flag, "disable_hotend", disable_hotend),
            DisableBed=_maybe(_flag, "disable_bed", disable_bed),
            ZLiftMm=_maybe(_whole_mm, "z_lift_mm", z_lift_mm, high=MAX_PAUSE_MM),
            RetractFilamentMm=_maybe(
                _whole_mm, "retract_filament_mm", retract_filament_mm, high=MAX_PAUSE_MM
            ),
            SuppressNotification=_maybe(_flag, "suppress_notification", suppress_notification),
            ShowSmartPausePopup=_maybe(_flag, "show_smart_pause_popup", show_smart_pause_popup),
        )
        await self._command("pause", body, io=(timeout, retry))

    async def resume(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Resume a paused print."""
        await self._command("resume", io=(timeout, retry))

    async def cancel(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Cancel the current print."""
        await self._command("cancel", io=(timeout, retry))

    async def home(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = HOME_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Home all axes; answers when the printer has homed (135 s deadline by default).

        Moonraker's plugin waits up to 120 s for ``G28`` (homing can heat the bed first).
        """
        self._require(Features.HOMING, "homing")
        await self._command("home", io=(timeout, retry))

    async def start(
        self,
        path: str,
        *,
        storage: str | None = None,
        plate: int | None = None,
        use_ams: bool | None = None,
        ams_mapping: list[int] | None = None,
        flow_calibration: bool | None = None,
        timelapse: bool | None = None,
        bed_leveling: bool | None = None,
        vibration_calibration: bool | None = None,
        layer_inspect: bool | None = None,
        timeout: float | aiohttp.ClientTimeout | None = START_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> PluginFile:
        """Start printing the file at ``path`` (a ``VirtualPath`` from :meth:`list_files`).

        ``storage`` is for PrusaLink (default ``local``); ``plate`` and the rest are Bambu
        Lab ``.3mf`` options (``ams_mapping``: the AMS slot for each filament of the file;
        the plugin's defaults are plate 1, AMS and flow calibration on). Returns the file
        started, with the printer's own answer in ``printer_response``. The plugin answers
        when the printer accepted the job (up to 60 s): the default deadline is 75 s.

        Raises:
            InvalidPrinterStateError: the printer is busy (786; PrusaLink's 409).
            UnsupportedOnPlatformError: the platform cannot start prints (788: Elegoo).

        """
        self._require(Features.PRINT_START, "starting prints")
        if ams_mapping is not None and (
            not isinstance(ams_mapping, list)
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in ams_mapping
            )
        ):
            raise InvalidArgumentError("ams_mapping must be a list of slot integers (-1 for none)")
        body = _body(
            Path=_text("path", path),
            Storage=_maybe(_text, "storage", storage),
            Plate=_maybe(_integer, "plate", plate, low=1),
            UseAms=_maybe(_flag, "use_ams", use_ams),
            AmsMapping=ams_mapping,
            FlowCali=_maybe(_flag, "flow_calibration", flow_calibration),
            Timelapse=_maybe(_flag, "timelapse", timelapse),
            BedLeveling=_maybe(_flag, "bed_leveling", bed_leveling),
            VibrationCali=_maybe(_flag, "vibration_calibration", vibration_calibration),
            LayerInspect=_maybe(_flag, "layer_inspect", layer_inspect),
        )
        result = await self._command("start", body, io=(timeout, retry))
        return structure(result, PluginFile, what="start answer")

    async def set_light(
        self,
        name: str,
        on: bool,  # noqa: FBT001 (reads as set_light("x", True))
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Switch a light (its name from ``status().job.lights``) on or off."""
        self._require(Features.LIGHT, "light control")
        await self._command(
            "set-light",
            {"Name": _text("name", name), "On": _flag("on", on)},
            io=(timeout, retry),
        )

    async def move_axis(
        self,
        axis: str,
        mm: float,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Move ``axis`` ("X", "Y" or "Z", any case) by ``mm`` relative to where it is.

        Negative moves back. Any finite distance is sent, as the plugin accepts it (0 is a
        no-op); the printer's firmware enforces its own travel limits.
        """
        self._require(Features.AXIS_MOVEMENT, "axis movement")
        upper = _text("axis", axis).upper()
        if upper not in _AXES:
            raise InvalidArgumentError(f"axis must be X, Y or Z (got {axis!r})")
        await self._command(
            "move-axis", {"Axis": upper, "DistanceMm": _number("mm", mm)}, io=(timeout, retry)
        )

    async def extrude(
        self,
        mm: float,
        extruder: int = 0,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Extrude ``mm`` of filament (negative retracts) on tool ``extruder`` (0-based).

        Any finite length is sent, as the plugin accepts it; the firmware limits a single
        extrusion (Klipper: ``max_extrude_only_distance``, 50 mm by default).
        """
        self._require(Features.EXTRUSION, "extrusion")
        await self._command(
            "extrude",
            {"Extruder": _integer("extruder", extruder), "DistanceMm": _number("mm", mm)},
            io=(timeout, retry),
        )

    async def set_temp(
        self,
        *,
        bed: float | None = None,
        chamber: float | None = None,
        tool: float | None = None,
        tool_number: int | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Set target temperatures in Celsius (0 turns a heater off).

        Ranges: bed 0-75, chamber 0-75, tool 0-260 (the plugin's); at least one target is
        required; ``tool_number`` picks the tool for ``tool`` (default: the active one) and
        is refused without ``tool`` (the plugin would ignore it: ours is the stricter check).
        """
        self._require(Features.TEMPERATURE, "temperature control")
        if bed is None and chamber is None and tool is None:
            raise InvalidArgumentError("set_temp needs at least one of bed, chamber or tool")
        if tool_number is not None and tool is None:
            raise InvalidArgumentError("tool_number needs a tool temperature")
        body = _body(
            BedC=_maybe(_number, "bed", bed, low=0, high=MAX_BED_C),
            ChamberC=_maybe(_number, "chamber", chamber, low=0, high=MAX_CHAMBER_C),
            ToolC=_maybe(_number, "tool", tool, low=0, high=MAX_TOOL_C),
            ToolNumber=_maybe(_integer, "tool_number", tool_number),
        )
        await self._command("set-temp", body, io=(timeout, retry))

    # ------------------------------------------------------------------ files

    async def list_files(
        self,
        root: str | None = None,
        *,
        path: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[FileEntry]:
        """The printer's files as a tree (``root``: "gcode", "config" or "logs")."""
        params: dict[str, str] = {}
        if root is not None:
            if root not in _ROOTS:
                raise InvalidArgumentError(f"root must be one of {sorted(_ROOTS)} (got {root!r})")
            params["root"] = root
        if path is not None:
            params["path"] = _text("path", path)
        return _entries(
            await self._run("GET", "files/list", params=params or None, io=(timeout, retry))
        )

    async def file_details(
        self,
        path: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> FileDetails:
        """What the printer knows about a file (size, time, the slicer's estimates).

        Fields the platform does not report are None (Bambu Lab: only size and time).

        Raises:
            PluginCommandFailedError: no such file (``plugin_status`` 404) or a path outside
                the roots the platform has metadata for (400).

        """
        result = await self._run(
            "GET", "files/details", params={"path": _text("path", path)}, io=(timeout, retry)
        )
        return structure(result, FileDetails, what="files/details answer")

    async def upload_file(
        self,
        path: str,
        source: UploadSource,
        *,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        retry: bool = False,
    ) -> PluginFile:
        """Upload ``source`` to ``path`` (a ``VirtualPath`` such as ``gcode/part.gcode``).

        A raw ``PUT`` through the transfer machinery: streamed, limit-checked, progress.
        """
        answer = await self._files.upload(
            f"{PLUGIN_PREFIX}files/upload?{urlencode({'path': _text('path', path)})}",
            source,
            raw=True,
            method="PUT",
            progress=progress,
            size=size,
            retry=retry,
        )
        result = unwrap_envelope(answer.data, command="files/upload", secrets=self._funnel.secrets)
        return structure(result, PluginFile, what="files/upload answer")

    def stream_file(
        self, path: str, *, progress: ProgressCallback | None = None
    ) -> AbstractAsyncContextManager[DownloadStream]:
        """Download a file chunk by chunk (``async with plugin.stream_file(p) as chunks``).

        Raises the plugin's errors like :meth:`download_file` does, on opening.
        """
        return self._stream_file(_text("path", path), progress)

    @contextlib.asynccontextmanager
    async def _stream_file(
        self, path: str, progress: ProgressCallback | None
    ) -> AsyncIterator[DownloadStream]:
        # Only errors from opening are the plugin's to translate, never the caller's own.
        opened = False
        try:
            async with self._files.download(
                DOWNLOAD_PATH,
                params={"path": path},
                progress=progress,
                check_answer=functools.partial(_refuse_plugin_json, secrets=self._funnel.secrets),
            ) as stream:
                opened = True
                yield stream
        except PrinterHTTPError as err:
            mapped = None if opened else plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise

    async def download_file(
        self,
        path: str,
        dest: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
    ) -> Path:
        """Download a file to ``dest`` atomically (see ``PrinterConnection.download_to``).

        Raises:
            PluginCommandFailedError: no such file (``plugin_status`` 404), or a plugin
                too old for file commands (754); ``dest`` is left untouched.
            PrinterSoftwareNotConnectedError: the printer is not connected (785).
            UnsupportedOnPlatformError: the platform has no file commands (788).

        """
        try:
            return await self._files.download_to(
                DOWNLOAD_PATH,
                dest,
                params={"path": _text("path", path)},
                progress=progress,
                resume=resume,
                check_answer=functools.partial(_refuse_plugin_json, secrets=self._funnel.secrets),
            )
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise

    async def delete_file(
        self,
        path: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> PluginFile:
        """Delete the file at ``path``."""
        result = await self._command(
            "files/delete", params={"path": _text("path", path)}, io=(timeout, retry)
        )
        return structure(result, PluginFile, what="files/delete answer")

    # ------------------------------------------------------------------ plugin

    async def ping(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> float:
        """Check that the plugin answers; return the round trip in seconds.

        The plugin answers ``Pong`` without asking the printer, so this tells "the plugin is
        reachable" apart from "the printer is connected" (:meth:`status`, 785).
        """
        started = time.monotonic()
        result = await self._run("GET", "ping", io=(timeout, retry))
        if not isinstance(result, Mapping) or result.get("Message") != "Pong":
            raise UnexpectedResponseError("ping did not answer Pong")
        return time.monotonic() - started

    async def connection_info(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> PluginConnectionInfo:
        """The printer's LAN address and its own credentials, as the plugin knows them.

        For an app that talks to the printer directly on the LAN (Bambu Lab's MQTT with the
        ``access_code`` and ``serial_number``, PrusaLink's API key). The credentials are
        secrets (hidden in ``repr()``, diagnostics and logs); keep them on the device.
        """
        result = await self._run("GET", "get-connection-info", io=(timeout, retry))
        return structure(result, PluginConnectionInfo, what="get-connection-info answer")

    async def set_default_webcam(
        self,
        name: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Make the webcam called ``name`` (from :meth:`webcams`) the printer's default.

        The plugin stores it (case-insensitively) and uses it for every app and for
        ``frames()``/``snapshot()`` without a path or index. A name that matches no webcam
        is accepted by the plugin and leaves index 0 the default.
        """
        await self._command(
            "set-default-webcam", {"Name": _text("name", name)}, io=(timeout, retry)
        )

    async def send_command(
        self,
        command: HTTPCommand | WebSocketCommand | MQTTCommand,
        *,
        wait_for_response: bool = True,
        timeout_sec: int | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> CommandResult:
        """Send a command in the printer's own protocol through the plugin.

        Each platform takes one transport: OctoPrint and PrusaLink :class:`HTTPCommand`,
        Moonraker and Elegoo (SDCP) :class:`WebSocketCommand`, Bambu Lab and Elegoo
        Centauri Carbon 2 :class:`MQTTCommand`; another raises
        :class:`UnsupportedOnPlatformError` (788). ``wait_for_response=False`` sends
        without waiting for the printer's answer (websocket and mqtt; some commands never
        answer). ``timeout_sec`` (1-1800, the plugin's default 10) is how long the plugin
        waits for the printer; this call's own deadline is then ``timeout_sec`` + 15 s
        unless ``timeout`` says otherwise. Never retried: commands change printers.

        Returns the :class:`CommandResult`; a failure the printer reports in its answer
        (an HTTP 404, a JSON-RPC error) sets ``is_error`` and raises nothing.

        Raises:
            PrinterSoftwareNotConnectedError: the plugin cannot reach the printer (785).
            PluginNotAuthorizedError: the plugin's printer credentials are refused (789).
            PluginCommandFailedError: no answer within ``timeout_sec`` (752), or arguments
                the plugin refused (``plugin_status`` 400).

        """
        body = _check_command(command)
        body["WaitForResponse"] = _flag("wait_for_response", wait_for_response)
        if timeout_sec is not None:
            body["TimeoutSec"] = _timeout_sec(timeout_sec)
            if timeout is None:
                timeout = float(body["TimeoutSec"] + COMMAND_TIMEOUT_MARGIN)
        result = await self._command("send-command", body, io=(timeout, retry))
        return structure(result, CommandResult, what="send-command answer")


async def _refuse_plugin_json(stream: DownloadStream, *, secrets: KnownSecrets) -> None:
    """A download the plugin answered with its own JSON (``text/json``) is an error.

    Printers serve files as what they are (octet-stream, Moonraker and OctoPrint by file
    extension); ``text/json`` is the plugin's own media type, for its envelopes. An old
    plugin without file commands answers ``files/download`` with HTTP 200 and
    ``{"Status": 754}``, and a failure inside the command with ``{"Status": 752}``: saving
    that as the file would lose the error.
    """
    if stream.headers.get("Content-Type", "").split(";")[0].strip().lower() != "text/json":
        return
    body = b""
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_ENVELOPE_SIZE:
            break
    raise content_error(body, what="files/download", secrets=secrets)
