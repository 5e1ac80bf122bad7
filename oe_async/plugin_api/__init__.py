"""The printer-agnostic plugin command API (``/octoeverywhere-command-api/``): ``printer.plugin``.

One API for every printer OctoEverywhere supports. The wire format (the ``Status``
envelope, raw endpoints' JSON error bodies) is decoded by :mod:`oe_async._plugin_wire`;
file transfers use :class:`oe_async.transfer.Files`. :class:`PluginAPI` holds the status,
the controls and the plugin's own commands; its bases run a command (``_calls``) and hold
the file commands (``_files``); ``_args`` checks the arguments before anything is sent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import aiohttp

from oe_async._convert import structure
from oe_async._funnel import Funnel
from oe_async._plugin_wire import PLUGIN_PREFIX, plugin_error_from_http, unwrap_envelope
from oe_async.errors import (
    InvalidArgumentError,
    UnexpectedResponseError,
    UnsupportedOnPlatformError,
)
from oe_async.models import WebcamList
from oe_async.plugin_commands import CommandResult, HTTPCommand, MQTTCommand, WebSocketCommand
from oe_async.plugin_models import Features, PluginConnectionInfo, PluginFile, PrinterStatus
from oe_async.retry import RetryPolicy
from oe_async.transfer import Files

from ._args import (
    check_command,
    check_flag,
    check_integer,
    check_number,
    check_text,
    check_timeout_sec,
    check_whole_mm,
    command_body,
    optional,
)
from ._files import PluginFiles

__all__ = ["PLUGIN_PREFIX", "PluginAPI", "plugin_error_from_http", "unwrap_envelope"]

_AXES: Final = frozenset({"X", "Y", "Z"})
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


class PluginAPI(PluginFiles):
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
        super().__init__(funnel, files)
        #: The last :meth:`status`, used for the feature checks (None before the first).
        self.last_status: PrinterStatus | None = None

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
            if check_flag("include_material_system", include_material_system)
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
        body = command_body(
            SmartPause=optional(check_flag, "smart_pause", smart_pause),
            DisableHotend=optional(check_flag, "disable_hotend", disable_hotend),
            DisableBed=optional(check_flag, "disable_bed", disable_bed),
            ZLiftMm=optional(check_whole_mm, "z_lift_mm", z_lift_mm, high=MAX_PAUSE_MM),
            RetractFilamentMm=optional(
                check_whole_mm, "retract_filament_mm", retract_filament_mm, high=MAX_PAUSE_MM
            ),
            SuppressNotification=optional(
                check_flag, "suppress_notification", suppress_notification
            ),
            ShowSmartPausePopup=optional(
                check_flag, "show_smart_pause_popup", show_smart_pause_popup
            ),
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
        body = command_body(
            Path=check_text("path", path),
            Storage=optional(check_text, "storage", storage),
            Plate=optional(check_integer, "plate", plate, low=1),
            UseAms=optional(check_flag, "use_ams", use_ams),
            AmsMapping=ams_mapping,
            FlowCali=optional(check_flag, "flow_calibration", flow_calibration),
            Timelapse=optional(check_flag, "timelapse", timelapse),
            BedLeveling=optional(check_flag, "bed_leveling", bed_leveling),
            VibrationCali=optional(check_flag, "vibration_calibration", vibration_calibration),
            LayerInspect=optional(check_flag, "layer_inspect", layer_inspect),
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
            {"Name": check_text("name", name), "On": check_flag("on", on)},
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
        upper = check_text("axis", axis).upper()
        if upper not in _AXES:
            raise InvalidArgumentError(f"axis must be X, Y or Z (got {axis!r})")
        await self._command(
            "move-axis", {"Axis": upper, "DistanceMm": check_number("mm", mm)}, io=(timeout, retry)
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
            {"Extruder": check_integer("extruder", extruder), "DistanceMm": check_number("mm", mm)},
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
        body = command_body(
            BedC=optional(check_number, "bed", bed, low=0, high=MAX_BED_C),
            ChamberC=optional(check_number, "chamber", chamber, low=0, high=MAX_CHAMBER_C),
            ToolC=optional(check_number, "tool", tool, low=0, high=MAX_TOOL_C),
            ToolNumber=optional(check_integer, "tool_number", tool_number),
        )
        await self._command("set-temp", body, io=(timeout, retry))

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
            "set-default-webcam", {"Name": check_text("name", name)}, io=(timeout, retry)
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
        body = check_command(command)
        body["WaitForResponse"] = check_flag("wait_for_response", wait_for_response)
        if timeout_sec is not None:
            body["TimeoutSec"] = check_timeout_sec(timeout_sec)
            if timeout is None:
                timeout = float(body["TimeoutSec"] + COMMAND_TIMEOUT_MARGIN)
        result = await self._command("send-command", body, io=(timeout, retry))
        return structure(result, CommandResult, what="send-command answer")
