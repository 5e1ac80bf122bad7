"""Each printer platform of the real plugin, with only its printer-specific hooks faked.

For every platform the plugin's own platform command handler runs (OctoPrint's,
Moonraker's, Bambu Lab's, PrusaLink's, Elegoo's, Elegoo Centauri Carbon 2's), with its own
state models fed native printer messages (a Bambu ``report``, Klipper's
``printer.objects.query`` answer, PrusaLink's ``/api/v1/status``, an SDCP status...). What
is faked is the connection to the printer (the ``*Client`` singletons, OctoPrint's printer
object), the printer's file system (:class:`~tests.conformance.printer_backend.
PrinterBackend`, or a stand-in for Bambu's FTP) and the webcam helper's settings (which
point at the backend's MJPEG cameras). The plugin's common code (``CommandHandler``,
``WebcamHelper``, ``FileSystemCommandHelper``, QuickCam, ``OctoHttpRequest``) is all real.

Import this module only once the plugin's source is on ``sys.path``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Final

import requests
from bambu_octoeverywhere import bambuclient, bambucommandhandler, bambumodels
from bambu_octoeverywhere.bambufilemanager import BambuFtpFileInfo, BambuFtpsError
from elegoo_cc2_octoeverywhere import elegoocc2client, elegoocc2commandhandler, elegoocc2models
from elegoo_cc2_octoeverywhere.elegoocc2filemanager import ElegooCc2FileManager
from elegoo_octoeverywhere import elegooclient, elegoocommandhandler, elegoomodels
from elegoo_octoeverywhere.elegoofilemanager import ElegooFileManager
from linux_host.config import Config
from moonraker_octoeverywhere import moonrakerclient, moonrakercommandhandler
from moonraker_octoeverywhere.filemetadatacache import FileMetadataCache
from moonraker_octoeverywhere.jsonrpcresponse import JsonRpcResponse
from moonraker_octoeverywhere.lightmanager import LightManager
from moonraker_octoeverywhere.smartpause import SmartPause as MoonrakerSmartPause
from octoeverywhere.commandhandler import CommandHandler
from octoeverywhere.compat import Compat
from octoeverywhere.gadget import Gadget
from octoeverywhere.httpsessions import HttpSessions
from octoeverywhere.interfaces import ILocalAuth, INotificationHandler, IWebcamPlatformHelper
from octoeverywhere.localip import LocalIpHelper
from octoeverywhere.mdns import MDns
from octoeverywhere.octohttprequest import OctoHttpRequest
from octoeverywhere.printinfo import PrintInfoManager
from octoeverywhere.sentry import Sentry
from octoeverywhere.Webcam.webcamhelper import WebcamHelper
from octoeverywhere.Webcam.webcamsettingitem import WebcamSettingItem
from octoprint_octoeverywhere import octoprintcommandhandler
from octoprint_octoeverywhere.printerstateobject import PrinterStateObject
from octoprint_octoeverywhere.smartpause import SmartPause as OctoPrintSmartPause
from prusalink_octoeverywhere import prusalinkclient, prusalinkcommandhandler, prusalinkmodels

from .plugin_host import LOGGER
from .printer_backend import MOONRAKER_API_KEY, OCTOPRINT_API_KEY, PrinterBackend

#: Printer credentials the plugin knows (get-connection-info hands them out).
BAMBU_ACCESS_CODE: Final = "bambu-lan-code-31415926"
BAMBU_SERIAL: Final = "01S00C123456789"
CC2_ACCESS_CODE: Final = "cc2-lan-code-27182818"
CC2_SERIAL: Final = "CC2E00112233"
PRUSALINK_API_KEY: Final = "prusalink-key-16180339"
PRUSALINK_USER: Final = "maker"
PRUSALINK_PASSWORD: Final = "prusalink-pw-14142135"


class _NotificationHandler(INotificationHandler):
    """OctoEverywhere's own state in a status: the print id, its start, Gadget (real)."""

    def __init__(self) -> None:
        self.gadget = Gadget(LOGGER, self, None)  # type: ignore[arg-type]
        self.gadget.ScoreHistory = [0.1, 0.25]
        self.gadget.MostRecentGadgetScore = 0.25
        self.gadget.MostRecentGadgetScoreUpdateTimeSec = time.time() - 12

    def BuildCommonEventArgs(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        return (None, None)

    def GetPrintId(self) -> str:  # noqa: N802
        return "a1b2c3d4e5f6"

    def GetNotificationSnapshot(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        return None

    def GetGadget(self) -> Gadget:  # noqa: N802
        return self.gadget

    def GetPrintStartTimeSec(self) -> float:  # noqa: N802
        return 1_780_000_000.5

    def OnBedCooldownComplete(self, bedTempCelsius: float) -> None:  # noqa: N802, N803
        return None


class _HostCommands:
    def OnRekeyCommand(self) -> bool:  # noqa: N802
        return False


class _WebcamSettings(IWebcamPlatformHelper):
    """The webcam helper's settings: the platform's cameras, pointed at the backend."""

    def __init__(self, items: list[WebcamSettingItem]) -> None:
        self.items = items

    def GetWebcamConfig(self) -> list[WebcamSettingItem]:  # noqa: N802
        return list(self.items)

    def ShouldQuickCamStreamKeepRunning(self) -> bool:  # noqa: N802
        return False

    def OnQuickCamStreamStart(self, url: str) -> None:  # noqa: N802
        return None

    def OnQuickCamStreamStall(self, url: str) -> None:  # noqa: N802
        return None


class Platform:
    """A printer platform as the plugin runs it, its printer faked.

    ``job`` moves the fake printer between ``idle``, ``printing`` and ``paused``;
    ``connected = False`` and ``auth_ok = False`` play a printer the plugin lost (785) or
    cannot log in to (789); ``sent`` records the native commands the printer received.
    """

    name: ClassVar[str]
    #: The transport of this platform's send-command.
    transport: ClassVar[str]

    def __init__(self, backend: PrinterBackend, data_dir: Path) -> None:
        self.backend = backend
        self.data_dir = data_dir
        self.job = "printing"
        self.connected = True
        self.auth_ok = True
        self.sent: list[Any] = []
        self.config = Config(str(data_dir))

    # The plugin's common singletons, fresh for each test.
    def install(self) -> None:
        Sentry.SetLogger(LOGGER)
        HttpSessions.Init(LOGGER)
        MDns.Init(LOGGER, str(self.data_dir))
        LocalIpHelper.SetConnectionTargetIpOverride("127.0.0.1")
        OctoHttpRequest.SetLocalHostAddress("127.0.0.1")
        OctoHttpRequest.SetLocalOctoPrintPort(self.backend.port)
        OctoHttpRequest.SetLocalHttpProxyPort(self.backend.port)
        for flag in ("OctoPrint", "Moonraker", "Bambu", "ElegooOs", "ElegooCc2", "PrusaLink"):
            getattr(Compat, f"SetIs{flag}")(False)
        Compat._LocalAuthObj = None
        self.config.SetStr(Config.SectionCompanion, Config.CompanionKeyIpOrHostname, "127.0.0.1")
        self.config.SetInt(Config.SectionCompanion, Config.CompanionKeyPort, self.backend.port)
        #: The cameras the webcam helper reports (change ``.items`` to change them).
        self.webcam_settings = _WebcamSettings(self.webcams())
        WebcamHelper.Init(LOGGER, self.webcam_settings, str(self.data_dir))
        CommandHandler.Init(LOGGER, _NotificationHandler(), self.handler(), _HostCommands())

    def cam(self, name: str, kind: str) -> str:
        return f"{self.backend.url}/cam/{name}/{kind}"

    def webcams(self) -> list[WebcamSettingItem]:
        raise NotImplementedError

    def handler(self) -> Any:
        raise NotImplementedError


# ---------------------------------------------------------------------------- OctoPrint


class _OctoPrintPrinter:
    """OctoPrint's ``PrinterInterface`` as the plugin uses it."""

    def __init__(self, platform: OctoPrintPlatform) -> None:
        self.platform = platform

    def get_state_id(self) -> str:
        if not self.platform.connected:
            return "OFFLINE"
        return {"printing": "PRINTING", "paused": "PAUSED"}.get(self.platform.job, "OPERATIONAL")

    def get_current_data(self) -> dict[str, Any]:
        printing = self.platform.job in ("printing", "paused")
        return {
            "state": {"text": self.get_state_id().title(), "flags": {}},
            "job": {
                "file": {"display": "benchy.gcode", "name": "benchy.gcode", "origin": "local"},
                "estimatedPrintTime": 8400.0,
                "filament": {"tool0": {"length": 4321.9, "volume": 10.4}},
            },
            "progress": {
                "completion": 42.5 if printing else 0.0,
                "printTime": 3600 if printing else None,
                "printTimeLeft": 4800 if printing else None,
            },
        }

    def get_current_job(self) -> dict[str, Any]:
        return self.get_current_data()["job"]

    def get_current_temperatures(self) -> dict[str, Any]:
        return {
            "tool0": {"actual": 219.81, "target": 220.0, "offset": 0},
            "bed": {"actual": 60.04, "target": 60.0, "offset": 0},
        }

    def is_printing(self) -> bool:
        return self.platform.connected and self.platform.job == "printing"

    def is_paused(self) -> bool:
        return self.platform.job == "paused"

    def is_pausing(self) -> bool:
        return False

    def pause_print(self, *args: Any, **kwargs: Any) -> None:
        self.platform.sent.append("pause_print")
        self.platform.job = "paused"

    def resume_print(self, *args: Any, **kwargs: Any) -> None:
        self.platform.sent.append("resume_print")
        self.platform.job = "printing"

    def cancel_print(self, *args: Any, **kwargs: Any) -> None:
        self.platform.sent.append("cancel_print")
        self.platform.job = "idle"

    def commands(self, commands: Any, *args: Any, **kwargs: Any) -> None:
        self.platform.sent.append(("commands", commands))

    def set_temperature(self, heater: str, value: float, *args: Any, **kwargs: Any) -> None:
        self.platform.sent.append(("set_temperature", heater, value))


class _OctoPrintLocalAuth(ILocalAuth):
    def AddAuthHeader(self, headers: dict[str, str]) -> None:  # noqa: N802
        headers["X-Api-Key"] = OCTOPRINT_API_KEY


class _OctoPrintPlugin:
    def __init__(self, platform: OctoPrintPlatform) -> None:
        self.platform = platform

    def ShowSmartPausePopUpOnPortalLoad(self) -> None:  # noqa: N802
        self.platform.sent.append("smart-pause-popup")


class OctoPrintPlatform(Platform):
    name = "octoprint"
    transport = "http"

    def webcams(self) -> list[WebcamSettingItem]:
        base = self.backend.url
        return [
            # OctoPi's mjpg-streamer URLs: the plugin reads them through QuickCam.
            WebcamSettingItem(
                "Classic",
                f"{base}/webcam/?action=snapshot",
                f"{base}/webcam/?action=stream",
                False,
                True,
                90,
            ),
            # Any other MJPEG URL is relayed as it is.
            WebcamSettingItem(
                "Bed", self.cam("bed", "snapshot"), self.cam("bed", "stream"), True, False, 0
            ),
        ]

    def handler(self) -> Any:
        printer = _OctoPrintPrinter(self)
        Compat.SetIsOctoPrint(True)
        Compat.SetLocalAuth(_OctoPrintLocalAuth())
        OctoPrintSmartPause.Init(LOGGER, printer, {"extruder": {"count": 1}})
        return octoprintcommandhandler.OctoPrintCommandHandler(
            LOGGER, printer, PrinterStateObject(LOGGER, printer), _OctoPrintPlugin(self)
        )


# ---------------------------------------------------------------------------- Moonraker


class _MoonrakerClient:
    """The plugin's Moonraker connection: JSON-RPC answered by a fake Klipper."""

    objects: ClassVar[list[str]] = [
        "webhooks",
        "print_stats",
        "virtual_sdcard",
        "gcode_move",
        "toolhead",
        "heater_bed",
        "extruder",
        "extruder1",
        "heater_generic chamber",
        "output_pin caselight",
    ]

    def __init__(self, platform: MoonrakerPlatform) -> None:
        self.platform = platform
        self.MoonrakerApiKey = MOONRAKER_API_KEY
        self.compat = moonrakerclient.MoonrakerCompat(LOGGER, "oe-conformance-printer", 40.0)
        self.light_on = True

    def GetPrinterObjectList(self) -> list[str]:  # noqa: N802
        return list(self.objects)

    def GetMoonrakerCompat(self) -> Any:  # noqa: N802
        return self.compat

    def IsDisconnectDueToAuth(self) -> bool:  # noqa: N802
        return not self.platform.auth_ok

    def GetMoonrakerHostAndPortFromConfig(self) -> tuple[str, int]:  # noqa: N802
        return ("127.0.0.1", self.platform.backend.port)

    def _status(self) -> dict[str, Any]:
        job = self.platform.job
        state = {"printing": "printing", "paused": "paused"}.get(job, "standby")
        active = job in ("printing", "paused")
        return {
            "print_stats": {
                "state": state,
                "filename": "calibration/cube.gcode" if active else "",
                "print_duration": 1800.4 if active else 0.0,
                "total_duration": 1900.0 if active else 0.0,
                "info": {"total_layer": 120, "current_layer": 33},
            },
            "virtual_sdcard": {"progress": 0.275 if active else 0.0, "is_active": active},
            "gcode_move": {"speed_factor": 1.0},
            "toolhead": {"extruder": "extruder1", "homed_axes": "xyz"},
            "heater_bed": {"temperature": 59.96, "target": 60.0},
            "extruder": {"temperature": 24.5, "target": 0.0},
            "extruder1": {"temperature": 244.87, "target": 245.0},
            "heater_generic chamber": {"temperature": 41.2, "target": 45.0},
            "output_pin caselight": {"value": 1.0 if self.light_on else 0.0},
            "webhooks": {"state": "ready"},
            "machine_state_manager": {},
        }

    def SendJsonRpcRequest(  # noqa: N802
        self,
        method: str,
        paramsDict: dict[str, Any] | None = None,  # noqa: N803
        timeoutSec: float | None = None,  # noqa: N803
        waitForResponse: bool = True,  # noqa: N803
    ) -> JsonRpcResponse:
        params = paramsDict or {}
        if not self.platform.connected:
            return JsonRpcResponse.FromError(JsonRpcResponse.OE_ERROR_WS_NOT_CONNECTED)
        if not self.platform.auth_ok:
            return JsonRpcResponse.FromError(JsonRpcResponse.MR_401_UNAUTHORIZED, "Unauthorized")
        if method == "printer.objects.query":
            status = self._status()
            wanted = params.get("objects", {})
            return JsonRpcResponse.FromSuccess(
                {"eventtime": 1234.5, "status": {k: v for k, v in status.items() if k in wanted}}
            )
        if method == "machine.device_power.devices":
            return JsonRpcResponse.FromError(-32601, "Method not found")
        self.platform.sent.append((method, params))
        if not waitForResponse:
            return JsonRpcResponse.FromSimpleSuccess("ok")
        if method in ("printer.print.pause", "printer.print.resume", "printer.print.cancel"):
            self.platform.job = {
                "printer.print.pause": "paused",
                "printer.print.resume": "printing",
            }.get(method, "idle")
            return JsonRpcResponse.FromSimpleSuccess(
                "ok", {"jsonrpc": "2.0", "result": "ok", "id": 1}
            )
        if method == "printer.print.start":
            self.platform.job = "printing"
            return JsonRpcResponse.FromSimpleSuccess(
                "ok", {"jsonrpc": "2.0", "result": "ok", "id": 2}
            )
        if method == "printer.gcode.script":
            script = str(params.get("script", ""))
            if script.startswith("SET_PIN PIN=caselight"):
                self.light_on = "VALUE=1" in script
            if "BAD" in script:
                raw = {
                    "jsonrpc": "2.0",
                    "error": {"code": 400, "message": "Unknown command"},
                    "id": 3,
                }
                return JsonRpcResponse.FromError(400, "Unknown command", raw)
            return JsonRpcResponse.FromSimpleSuccess(
                "ok", {"jsonrpc": "2.0", "result": "ok", "id": 3}
            )
        if method == "server.files.metadata":
            name = str(params.get("filename", ""))
            stored = self.platform.backend.files.get("gcodes", name)
            if stored is None:
                return JsonRpcResponse.FromError(404, f"Metadata not available for <{name}>")
            return JsonRpcResponse.FromSuccess(
                {
                    "size": len(stored.data),
                    "modified": stored.modified,
                    "uuid": "0a1b2c3d-4e5f",
                    "slicer": "OrcaSlicer",
                    "slicer_version": "2.2.0",
                    "layer_height": 0.2,
                    "first_layer_height": 0.25,
                    "object_height": 48.0,
                    "filament_total": 3120.5,
                    "filament_weight_total": 9.31,
                    "estimated_time": 5025,
                    "layer_count": 240,
                    "nozzle_diameter": 0.4,
                    "filament_type": "PLA",
                    "filament_name": "Generic PLA",
                    "first_layer_bed_temp": 60,
                    "first_layer_extr_temp": 215,
                    "thumbnails": [{"width": 32, "height": 32, "relative_path": ".thumbs/a.png"}],
                    "filename": name,
                }
            )
        raw = {
            "jsonrpc": "2.0",
            "error": {"code": -32601, "message": f"Method not found: {method}"},
        }
        return JsonRpcResponse.FromError(-32601, f"Method not found: {method}", raw)


class MoonrakerPlatform(Platform):
    name = "moonraker"
    transport = "websocket"

    def webcams(self) -> list[WebcamSettingItem]:
        base = self.backend.url
        return [
            WebcamSettingItem(
                "Nozzle", f"{base}/webcam/?action=snapshot", f"{base}/webcam/?action=stream"
            ),
            WebcamSettingItem(
                "Chamber",
                self.cam("chamber", "snapshot"),
                self.cam("chamber", "stream"),
                False,
                False,
                180,
            ),
        ]

    def handler(self) -> Any:
        client = _MoonrakerClient(self)
        Compat.SetIsMoonraker(True)
        moonrakerclient.MoonrakerClient._Instance = client
        LightManager.Init(LOGGER)
        FileMetadataCache.Init(LOGGER, client)  # type: ignore[arg-type]
        MoonrakerSmartPause.Init(LOGGER)
        return moonrakercommandhandler.MoonrakerCommandHandler(LOGGER, self.config)


# ---------------------------------------------------------------------------- Bambu Lab


class _BambuFiles:
    """What ``BambuFileManager`` does over FTPS, on the backend's file system."""

    def __init__(self, platform: BambuPlatform) -> None:
        self.platform = platform
        self.files = platform.backend.files

    def _check(self) -> None:
        if not self.platform.connected:
            raise BambuFtpsError("Connection refused", isConnectionError=True)
        if not self.platform.auth_ok:
            raise BambuFtpsError("530 Login incorrect.", isAuthError=True)

    def ListPrintableFiles(self) -> list[BambuFtpFileInfo]:  # noqa: N802
        self._check()
        return [
            BambuFtpFileInfo(path, len(s.data), s.modified)  # a dataclass
            for path, s in self.files.items("gcodes")
        ]

    def UploadFile(self, printerPath: str, uploadBody: Any) -> str:  # noqa: N802, N803
        self._check()
        context = uploadBody.OpenForRequest()
        try:
            data = context.GetData()
            raw = data.read() if hasattr(data, "read") else bytes(data)
        finally:
            context.Close()
        self.files.add("gcodes", printerPath.strip("/"), raw)
        return "226 Transfer complete."

    def DownloadFileToTemp(self, printerPath: str) -> tuple[str, int]:  # noqa: N802, N803
        self._check()
        stored = self.files.get("gcodes", printerPath.strip("/"))
        if stored is None:
            raise BambuFtpsError("550 No such file or directory.", isNotFound=True)
        with tempfile.NamedTemporaryFile(delete=False, dir=self.platform.data_dir) as handle:
            handle.write(stored.data)
        return handle.name, len(stored.data)

    def DeleteFile(self, printerPath: str) -> str:  # noqa: N802, N803
        self._check()
        if self.files.roots["gcodes"].pop(printerPath.strip("/"), None) is None:
            raise BambuFtpsError("550 No such file or directory.", isNotFound=True)
        return "250 Delete operation successful."


class _BambuClient:
    """The plugin's MQTT connection to a Bambu Lab X1 Carbon."""

    def __init__(self, platform: BambuPlatform) -> None:
        self.platform = platform
        self.version = bambumodels.BambuVersion(LOGGER)
        self.version.OnUpdate(
            {
                "module": [
                    {"name": "ota", "sw_ver": "01.08.02.00", "product_name": "X1 Carbon"},
                    {"name": "mc", "sn": BAMBU_SERIAL},
                    {"name": "rv1126", "hw_ver": "AP05", "project_name": "BL-P001"},
                ]
            }
        )

    def report(self) -> dict[str, Any]:
        job = self.platform.job
        gcode_state = {"printing": "RUNNING", "paused": "PAUSE"}.get(job, "IDLE")
        return {
            "gcode_state": gcode_state,
            "stg_cur": 0 if job == "printing" else (16 if job == "paused" else -1),
            "mc_percent": 42 if job != "idle" else 0,
            "mc_remaining_time": 83,
            "layer_num": 62,
            "total_layer_num": 145,
            "subtask_name": "benchy.3mf",
            "project_id": "123",
            "task_id": "456",
            "nozzle_temper": 219.81,
            "nozzle_target_temper": 220,
            "bed_temper": 55.13,
            "bed_target_temper": 55,
            "chamber_temper": 37.5,
            "print_error": 0,
            "lights_report": [{"node": "chamber_light", "mode": "on"}],
            "ams": {"ams": [], "tray_now": "255"},
        }

    def GetState(self) -> Any:  # noqa: N802
        if not self.platform.connected or not self.platform.auth_ok:
            return None
        state = bambumodels.BambuState()
        state.OnUpdate(self.report())
        return state

    def GetVersion(self) -> Any:  # noqa: N802
        return self.version

    def IsDisconnectDueToAuth(self) -> bool:  # noqa: N802
        return not self.platform.auth_ok

    def IsConnected(self) -> bool:  # noqa: N802
        return self.platform.connected and self.platform.auth_ok

    def _publish(self, msg: dict[str, Any]) -> bool:
        if not self.IsConnected():
            return False
        self.platform.sent.append(msg)
        return True

    def SendPause(self) -> bool:  # noqa: N802
        return self._publish({"print": {"sequence_id": "0", "command": "pause"}})

    def SendResume(self) -> bool:  # noqa: N802
        return self._publish({"print": {"sequence_id": "0", "command": "resume"}})

    def SendCancel(self) -> bool:  # noqa: N802
        return self._publish({"print": {"sequence_id": "0", "command": "stop"}})

    def SendSetChamberLight(self, on: bool) -> bool:  # noqa: N802
        return self._publish(
            {
                "system": {
                    "sequence_id": "0",
                    "command": "ledctrl",
                    "led_node": "chamber_light",
                    "led_mode": "on" if on else "off",
                }
            }
        )

    def SendCommand(  # noqa: N802
        self,
        payload: dict[str, Any],
        timeoutSec: float | None = None,  # noqa: N803
        waitForResponse: bool = True,  # noqa: N803
    ) -> Any:
        if not self._publish(payload):
            return bambuclient.BambuCommandResult(connected=False)
        request = {"topic": f"device/{BAMBU_SERIAL}/request", "payload": payload, "qos": 0}
        if not waitForResponse:
            return bambuclient.BambuCommandResult(result={"request": request, "response": None})
        body = next(iter(payload.values()), {})
        command = body.get("command") if isinstance(body, dict) else None
        if command == "never-answers":
            return bambuclient.BambuCommandResult(timeout=True)
        if command == "pushall":
            answer: dict[str, Any] = {
                "print": {**self.report(), "command": "push_status", "msg": 0}
            }
        else:
            answer = {next(iter(payload)): {**body, "result": "success"}}
        response = {"topic": f"device/{BAMBU_SERIAL}/report", "payload": answer, "qos": 0}
        return bambuclient.BambuCommandResult(result={"request": request, "response": response})


class BambuPlatform(Platform):
    name = "bambu"
    transport = "mqtt"

    def webcams(self) -> list[WebcamSettingItem]:
        # The real helper gives an RTSP (X1) or jpeg-socket (P1/A1) URL read by QuickCam;
        # here QuickCam reads an MJPEG source instead (its jmpeg:// scheme).
        stream = self.cam("bambu", "stream").replace("http://", "jmpeg://")
        return [WebcamSettingItem("Bambu Cam", None, stream, False, False, 0)]

    def handler(self) -> Any:
        Compat.SetIsBambu(True)
        bambuclient.BambuClient._Instance = _BambuClient(self)
        PrintInfoManager.Init(LOGGER, str(self.data_dir))
        self.config.SetStr(Config.SectionBambu, Config.BambuAccessToken, BAMBU_ACCESS_CODE)
        self.config.SetStr(Config.SectionBambu, Config.BambuPrinterSn, BAMBU_SERIAL)
        files = _BambuFiles(self)
        return bambucommandhandler.BambuCommandHandler(LOGGER, self.config, lambda: files)


# ---------------------------------------------------------------------------- PrusaLink


class _PrusaLinkClient:
    """The plugin's HTTP connection to a Prusa MK4 (requests to the backend)."""

    def __init__(self, platform: PrusaLinkPlatform) -> None:
        self.platform = platform

    def GetState(self) -> Any:  # noqa: N802
        if not self.platform.connected or not self.platform.auth_ok:
            return None
        job = self.platform.job
        printer_state = {"printing": "PRINTING", "paused": "PAUSED"}.get(job, "IDLE")
        status = {
            "printer": {
                "state": printer_state,
                "temp_nozzle": 214.9,
                "target_nozzle": 215.0,
                "temp_bed": 59.8,
                "target_bed": 60.0,
                "axis_z": 12.2,
            },
            "job": {"id": 7, "progress": 33.0, "time_printing": 1500, "time_remaining": 3100}
            if job != "idle"
            else None,
        }
        job_obj = (
            {
                "id": 7,
                "state": printer_state,
                "progress": 33.0,
                "time_printing": 1500,
                "time_remaining": 3100,
                "file": {
                    "name": "BENCHY~1.BGC",
                    "display_name": "benchy_0.4n_0.2mm_PLA_MK4_1h2m.bgcode",
                    "size": 1234567,
                    "meta": {
                        "estimated_print_time": 4600,
                        "filament used [mm]": 3800.5,
                        "filament used [g]": 11.4,
                    },
                },
            }
            if job != "idle"
            else None
        )
        state = prusalinkmodels.PrinterState(LOGGER)
        state.OnUpdate(status, job_obj, {"name": "Prusa MK4", "active_camera": True})
        return state

    def GetVersion(self) -> dict[str, Any]:  # noqa: N802
        return {"api": "2.0.0", "server": "2.1.2", "text": "PrusaLink 2.1.2", "firmware": "6.2.0"}

    def GetInfo(self) -> dict[str, Any]:  # noqa: N802
        return {"name": "Prusa MK4", "hostname": "prusa-mk4"}

    def IsDisconnectDueToAuth(self) -> bool:  # noqa: N802
        return not self.platform.auth_ok

    def _send(self, what: str, new_job: str) -> bool:
        if not self.platform.connected:
            return False
        self.platform.sent.append(what)
        self.platform.job = new_job
        return True

    def SendPause(self) -> bool:  # noqa: N802
        return self._send("pause", "paused")

    def SendResume(self) -> bool:  # noqa: N802
        return self._send("resume", "printing")

    def SendCancel(self) -> bool:  # noqa: N802
        return self._send("stop", "idle")

    def SendHttpCommand(  # noqa: N802
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None,
        data: bytes | None,
        timeoutSec: float | None,  # noqa: N803
    ) -> requests.Response:
        if not self.platform.connected:
            raise requests.ConnectionError("printer unreachable")
        sent = {"Accept": "application/json", "X-Api-Key": PRUSALINK_API_KEY, **(headers or {})}
        return requests.request(
            method,
            f"{self.platform.backend.url}{path}",
            headers=sent,
            data=data,
            timeout=timeoutSec or 10,
            allow_redirects=False,
        )


class PrusaLinkPlatform(Platform):
    name = "prusalink"
    transport = "http"

    def webcams(self) -> list[WebcamSettingItem]:
        # PrusaLink's helper has a snapshot URL and no stream (webcam/stream answers 754).
        snap = f"{self.backend.url}/api/v1/cameras/snap"
        return [WebcamSettingItem("PrusaLink Camera", snap, None, False, False, 0)]

    def handler(self) -> Any:
        Compat.SetIsPrusaLink(True)
        prusalinkclient.PrusaLinkClient._Instance = _PrusaLinkClient(self)
        for key, value in (
            (Config.PrusaLinkApiKey, PRUSALINK_API_KEY),
            (Config.PrusaLinkUsername, PRUSALINK_USER),
            (Config.PrusaLinkPassword, PRUSALINK_PASSWORD),
        ):
            self.config.SetStr(Config.SectionPrusaLink, key, value)
        self.config.SetStr(Config.SectionCompanion, Config.CompanionKeyPort, str(self.backend.port))
        return prusalinkcommandhandler.PrusaLinkCommandHandler(LOGGER, self.config)


# ---------------------------------------------------------------------------- Elegoo (SDCP)


class _ElegooClient:
    """The plugin's SDCP WebSocket connection to an Elegoo Centauri Carbon."""

    def __init__(self, platform: ElegooPlatform) -> None:
        self.platform = platform
        self.too_many_clients = False

    def GetState(self) -> Any:  # noqa: N802
        if not self.platform.connected or self.too_many_clients:
            return None
        job = self.platform.job
        status = {"printing": 13, "paused": 6}.get(job, 0)
        state = elegoomodels.PrinterState(LOGGER)
        state.OnUpdate(
            {
                "CurrentStatus": [1 if job != "idle" else 0],
                "PrintInfo": {
                    "Status": status,
                    "Filename": "ECC_0.4_Benchy.gcode" if job != "idle" else "",
                    "TaskId": "f3c1",
                    "CurrentLayer": 80,
                    "TotalLayer": 240,
                    "CurrentTicks": 1700,
                    "TotalTicks": 5100,
                    "Progress": 33,
                },
                "TempOfNozzle": 220.2,
                "TempTargetNozzle": 220,
                "TempOfHotbed": 60.4,
                "TempTargetHotbed": 60,
                "TempOfBox": 31.0,
                "TempTargetBox": 0,
                "LightStatus": {"SecondLight": 1, "RgbLight": [0, 0, 0]},
            }
        )
        return state

    def IsDisconnectDueToTooManyClients(self) -> bool:  # noqa: N802
        return self.too_many_clients

    def SendRequest(  # noqa: N802
        self,
        cmdId: int,  # noqa: N803
        data: dict[str, Any] | None = None,
        waitForResponse: bool = True,  # noqa: N803
        timeoutSec: float | None = None,  # noqa: N803
    ) -> Any:
        msg = elegooclient.ResponseMsg
        if not self.platform.connected or self.too_many_clients:
            return msg(None, msg.OE_ERROR_WS_NOT_CONNECTED)
        self.platform.sent.append((cmdId, data or {}))
        if not waitForResponse:
            return msg(None)
        if cmdId == 9999:
            return msg(None, msg.OE_ERROR_TIMEOUT)
        return msg(
            {
                "Id": "",
                "Data": {"Cmd": cmdId, "Data": {"Ack": 0}, "RequestID": "r1", "MainboardID": "m1"},
                "Topic": "sdcp/response/m1",
            }
        )


class ElegooPlatform(Platform):
    name = "elegoo"
    transport = "websocket"

    def __init__(self, backend: PrinterBackend, data_dir: Path) -> None:
        super().__init__(backend, data_dir)
        self.client = _ElegooClient(self)

    def webcams(self) -> list[WebcamSettingItem]:
        stream = self.cam("elegoo", "stream").replace("http://", "jmpeg://")
        return [WebcamSettingItem("Elegoo Cam", None, f"{stream}?timestamp=1", False, False, 0)]

    def handler(self) -> Any:
        Compat.SetIsElegooOs(True)
        elegooclient.ElegooClient._Instance = self.client
        ElegooFileManager.Init(LOGGER)
        return elegoocommandhandler.ElegooCommandHandler(LOGGER, self.config)


# ---------------------------------------------------------------------------- Elegoo CC2


class _ElegooCc2Client:
    """The plugin's MQTT connection to an Elegoo Centauri Carbon 2."""

    def __init__(self, platform: ElegooCc2Platform) -> None:
        self.platform = platform
        self.attributes = elegoocc2models.PrinterAttributes(LOGGER)
        self.attributes.OnUpdate(
            {
                "machine_model": "Centauri Carbon 2",
                "sn": CC2_SERIAL,
                "hardware_version": "V1.0",
                "software_version": {"ota_version": "1.2.3", "mcu_version": "0.9.1"},
            }
        )

    def GetState(self) -> Any:  # noqa: N802
        if not self.platform.connected or not self.platform.auth_ok:
            return None
        job = self.platform.job
        sub = {"printing": 2075, "paused": 2502}.get(job)
        state = elegoocc2models.PrinterState(LOGGER)
        state.OnUpdate(
            {
                "machine_status": {
                    "status": 2 if sub else 1,
                    "sub_status": sub or 0,
                    "progress": 45,
                },
                "print_status": {
                    "filename": "cube.gcode" if sub else "",
                    "uuid": "u-1",
                    "current_layer": 12,
                    "total_layer": 100,
                    "print_duration": 600,
                    "total_duration": 1400,
                    "progress": 45,
                },
                "extruder": {"temperature": 210.5, "target": 210},
                "heater_bed": {"temperature": 55.2, "target": 55},
                "ztemperature_sensor": {"temperature": 30.1},
                "led": {"status": 0},
            }
        )
        return state

    def GetAttributes(self) -> Any:  # noqa: N802
        return self.attributes

    def IsDisconnectDueToAuth(self) -> bool:  # noqa: N802
        return not self.platform.auth_ok

    def IsDisconnectDueToTooManyClients(self) -> bool:  # noqa: N802
        return False

    def GetApiRequestResponseTopics(self) -> dict[str, str]:  # noqa: N802
        return {
            "RequestTopic": f"elegoo/{CC2_SERIAL}/oe-client/api_request",
            "ResponseTopic": f"elegoo/{CC2_SERIAL}/oe-client/api_response",
        }

    def SendRequest(  # noqa: N802
        self,
        method: int,
        params: dict[str, Any] | None = None,
        waitForResponse: bool = True,  # noqa: N803
        timeoutSec: float | None = None,  # noqa: N803
    ) -> Any:
        msg = elegoocc2client.ResponseMsg
        if not self.platform.connected or not self.platform.auth_ok:
            return msg(None, msg.OE_ERROR_MQTT_NOT_CONNECTED)
        self.platform.sent.append((method, params or {}))
        if not waitForResponse:
            return msg(None)
        raw = {"id": 5, "method": method, "result": {"error_code": 0}}
        return msg({"error_code": 0}, rawResponse=raw)


class ElegooCc2Platform(Platform):
    name = "elegoo_cc2"
    transport = "mqtt"

    def webcams(self) -> list[WebcamSettingItem]:
        stream = self.cam("cc2", "stream").replace("http://", "jmpeg://")
        return [WebcamSettingItem("Elegoo CC2 Cam", None, stream, False, False, 0)]

    def handler(self) -> Any:
        Compat.SetIsElegooCc2(True)
        elegoocc2client.ElegooCc2Client._Instance = _ElegooCc2Client(self)
        ElegooCc2FileManager.Init(LOGGER)
        self.config.SetStr(Config.SectionElegoo, Config.ElegooCc2AccessCode, CC2_ACCESS_CODE)
        self.config.SetStr(Config.SectionElegoo, Config.ElegooCc2PrinterSn, CC2_SERIAL)
        return elegoocc2commandhandler.ElegooCc2CommandHandler(LOGGER, self.config)


PLATFORMS: Final[dict[str, type[Platform]]] = {
    cls.name: cls
    for cls in (
        OctoPrintPlatform,
        MoonrakerPlatform,
        BambuPlatform,
        PrusaLinkPlatform,
        ElegooPlatform,
        ElegooCc2Platform,
    )
}
