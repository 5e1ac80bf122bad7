"""The simulator's OctoEverywhere plugin command API (``/octoeverywhere-command-api/``).

It answers as the real plugin's ``CommandHandler`` does: HTTP 200 with a ``text/json``
envelope (``{"Status": ..., "Result": ...}`` or ``{"Status": ..., "Error": ...}``) for every
JSON command, 751 for a body that is not JSON, 754 for an unknown command, 788 for what the
platform cannot do; arguments come from the JSON body, or from the query string (keys
lower-cased) when there is none, whatever the HTTP method.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from oe_async.testing._core import UNKNOWN_COMMAND, SimulatorCore, plugin_json, simulator_of
from oe_async.testing.files import SimFile
from oe_async.testing.plugin_files import check_file_path, platform_path, unsupported_files

PREFIX = "/octoeverywhere-command-api/"
NOT_SUPPORTED: Final = "Not Supported"
#: Per platform, the keys its status leaves out (what the real handlers do not send).
_STATUS_OMITS: Final[dict[str | None, tuple[str, ...]]] = {
    "octoprint": ("SubState", "Lights", "EstTotalFilWeightMg"),
    "moonraker": ("EstTotalFilWeightMg",),
    "bambu": ("EstTotalFilWeightMg",),
    "prusalink": ("ChamberActual", "ChamberTarget"),
}


def envelope(
    sim: SimulatorCore, status: int, result: Any = None, error: str | None = None
) -> web.Response:
    """A plugin answer: always HTTP 200, the outcome in ``Status``."""
    body: dict[str, Any] = {"Status": status}
    if error is not None:
        body["Error"] = error
    if result is not None:
        body[sim.state.plugin.result_key] = result
    return plugin_json(body)


async def command_args(request: web.Request) -> dict[str, Any] | None:
    """The command's arguments as the plugin reads them; raises ValueError for bad JSON."""
    if request.can_read_body:
        body = await request.read()
        if body:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("the arguments must be a JSON object")
            return data
    if request.query:
        return {key.lower(): value for key, value in request.query.items()}
    return None


def _job_status(sim: SimulatorCore, *, with_materials: bool) -> dict[str, Any]:
    plugin = sim.state.plugin
    layers = plugin.platform not in ("octoprint", "prusalink")
    job: dict[str, Any] = {
        "State": plugin.job_state,
        "SubState": plugin.sub_state,
        "Error": plugin.error,
        "Lights": plugin.lights,
        "CurrentPrint": {
            "Progress": 42.5,
            "DurationSec": 3600,
            "TimeLeftSec": 4800,
            "FileName": "benchy.gcode",
            "EstTotalFilUsedMm": 12345,
            "EstTotalFilWeightMg": 9876,
            "CurrentLayer": 62 if layers else None,
            "TotalLayers": 145 if layers else None,
            "Temps": {
                "BedActual": 60.1,
                "BedTarget": 60.0,
                "HotendActual": 219.8,
                "HotendTarget": 220.0,
                "ChamberActual": 38.2,
                "ChamberTarget": 40.0,
            },
        },
    }
    for key in _STATUS_OMITS.get(plugin.platform, ()):
        job.pop(key, None)
        job["CurrentPrint"].pop(key, None)
        job["CurrentPrint"]["Temps"].pop(key, None)
    if with_materials:
        job["MaterialSystem"] = plugin.material_system
    return job


def _status_result(sim: SimulatorCore, *, with_materials: bool) -> dict[str, Any]:
    plugin = sim.state.plugin
    webcams = [
        {k: v for k, v in cam.items() if not k.endswith("Url")} for cam in sim.state.webcam.webcams
    ]
    return {
        "JobStatus": _job_status(sim, with_materials=with_materials),
        "OctoEverywhereStatus": {
            "MostRecentPrintIdStr": "sim-print-1",
            "PrintStartTimeSec": 1716220800,
            "Gadget": {
                "LastScore": 7.5,
                "ScoreHistory": [7.5, 8.0],
                "TimeSinceLastScoreSec": 35.2,
                "IntervalSec": 40.0,
                "IsSuppressed": False,
                "TimeSinceLastWarnSec": None,
                "TimeSinceLastPauseSec": None,
            },
        },
        "PlatformVersion": plugin.platform_version,
        "Features": plugin.features,
        "ListWebcams": {"Webcams": webcams, "DefaultIndex": sim.state.webcam.default_index},
    }


def _entry(sim: SimulatorCore, simfile: SimFile, path: str, name: str) -> dict[str, Any]:
    platform = sim.state.plugin.platform
    entry: dict[str, Any] = {
        "Type": "file",
        "Name": name,
        "VirtualPath": path,
        "PlatformPath": platform_path(path),
        "SizeBytes": simfile.size,
        "ModifiedTimeSec": int(simfile.modified),
        # Moonraker reports permissions; OctoPrint and Bambu's FTP do not.
        "Permissions": "rw" if platform in (None, "moonraker") else None,
    }
    if platform in (None, "octoprint"):  # OctoPrint's own keys: clients keep them in `extra`
        entry.update(Origin="local", Display=name)
    return entry


def _tree(sim: SimulatorCore, roots: tuple[str, ...]) -> list[dict[str, Any]]:
    """The stored files as the plugin's nested folders (folders first, then by name)."""
    top: dict[str, dict[str, Any]] = {
        root: {"Type": "folder", "Name": root, "VirtualPath": root, "Children": {}}
        for root in roots
    }
    for path, simfile in sorted(sim.files.files.items()):
        parts = path.split("/")
        if parts[0] not in top or len(parts) < 2:
            continue
        node = top[parts[0]]
        for depth, part in enumerate(parts[1:-1], start=2):
            virtual = "/".join(parts[:depth])
            node = node["Children"].setdefault(
                part, {"Type": "folder", "Name": part, "VirtualPath": virtual, "Children": {}}
            )
        node["Children"][parts[-1]] = _entry(sim, simfile, path, parts[-1])

    def listify(level: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        nodes = [
            {**node, "Children": listify(node["Children"])} if node["Type"] == "folder" else node
            for node in level.values()
        ]
        return sorted(nodes, key=lambda n: (n["Type"] != "folder", n["Name"].lower()))

    return listify(top)


Handler = Callable[[SimulatorCore, dict[str, Any] | None], web.Response]


def _transition(allowed: tuple[str, ...], new_state: str, refusal: str) -> Handler:
    def handle(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
        plugin = sim.state.plugin
        if plugin.job_state not in allowed:
            return envelope(sim, 786, error=refusal)
        plugin.job_state = new_state
        return envelope(sim, 200, {})

    return handle


def _status(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    flag = (args or {}).get("includematerialsystem", (args or {}).get("IncludeMaterialSystem"))
    with_materials = flag is True or str(flag).lower() in ("true", "1")
    return envelope(sim, 200, _status_result(sim, with_materials=with_materials))


def _webcams(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    settings = sim.state.webcam
    return envelope(sim, 200, {"Webcams": settings.webcams, "DefaultIndex": settings.default_index})


def _set_default_webcam(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    name = (args or {}).get("Name")
    if name is None:
        return envelope(sim, 400, error="No name passed")
    lowered = str(name).lower()
    sim.state.plugin.default_webcam_name = lowered
    names = [str(cam.get("Name", "")).lower() for cam in sim.state.webcam.webcams]
    sim.state.webcam.default_index = names.index(lowered) if lowered in names else 0
    return envelope(sim, 200, {})


def _start(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    plugin = sim.state.plugin
    if not plugin.can_start:
        return envelope(sim, 788, error="start is unsupported on this platform.")
    try:
        path = check_file_path(args, ("gcode",))
    except ValueError as err:
        return envelope(sim, 400, error=str(err))
    if plugin.job_state in ("printing", "paused"):
        return envelope(sim, 786, error="The printer is busy")
    if path not in sim.files:
        return envelope(sim, 404, error="start failed: HTTP 404. File not found")
    plugin.job_state = "printing"
    return envelope(sim, 200, {"VirtualPath": path, "PlatformPath": platform_path(path)})


def _set_light(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    args = args or {}
    name, on = args.get("Name"), args.get("On")
    if not isinstance(name, str):
        return envelope(sim, 400, error="No light name passed")
    if not isinstance(on, bool):
        return envelope(sim, 400, error="No light on/off state passed")
    plugin = sim.state.plugin
    if not plugin.features & 1:
        return envelope(sim, 788, error=NOT_SUPPORTED)
    light = next((item for item in plugin.lights or [] if item["Name"] == name), None)
    if light is None and plugin.platform == "moonraker":
        return envelope(sim, 752, error="set-light failed on Moonraker: failed to set light state.")
    if light is None:
        return envelope(sim, 400, error=f"Unknown light name: {name}")
    light["On"] = on
    return envelope(sim, 200, {})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _feature(sim: SimulatorCore, bit: int) -> web.Response | None:
    return None if sim.state.plugin.features & bit else envelope(sim, 788, error=NOT_SUPPORTED)


def _move_axis(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    args = args or {}
    if not isinstance(args.get("Axis"), str):
        return envelope(sim, 400, error="No axis specified or invalid type")
    if not _is_number(args.get("DistanceMm")):
        return envelope(sim, 400, error="No distance specified or invalid type")
    if str(args["Axis"]).upper() not in ("X", "Y", "Z"):
        return envelope(sim, 400, error="Invalid axis. Must be X, Y, or Z")
    return _feature(sim, 2) or envelope(sim, 200, {})


def _home(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    return _feature(sim, 4) or envelope(sim, 200, {})


def _extrude(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    args = args or {}
    if type(args.get("Extruder")) is not int or not _is_number(args.get("DistanceMm")):
        return envelope(sim, 400, error="No extruder specified or invalid type")
    return _feature(sim, 8) or envelope(sim, 200, {})


def _set_temp(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    limits = {"BedC": 75, "ChamberC": 75, "ToolC": 260}
    given = {k: v for k, v in (args or {}).items() if k in limits and v is not None}
    if not all(_is_number(v) for v in given.values()):
        return envelope(sim, 400, error="Invalid temperature type")
    if not given:
        return envelope(sim, 400, error="At least one heater must be specified")
    for key, value in given.items():
        if not 0 <= value <= limits[key]:
            return envelope(sim, 400, error=f"{key} must be between 0 and {limits[key]}°C")
    return _feature(sim, 16) or envelope(sim, 200, {})


def _ok(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    return envelope(sim, 200, {})


def _ping(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    return envelope(sim, 200, {"Message": "Pong"})


def _connection_info(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    return envelope(sim, 200, dict(sim.state.plugin.connection))


def _send_http(sim: SimulatorCore, args: dict[str, Any]) -> Any:
    path = args.get("Path", args.get("path"))
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        raise ValueError("For an 'http' send-command, the 'Path' must be a relative path.")
    if "://" in path:
        raise ValueError("For an 'http' send-command, absolute URLs are not allowed.")
    if "BodyText" in args and "BodyBase64" in args:
        raise ValueError("Provide the raw http body as either 'BodyText' or 'BodyBase64'.")
    if "BodyBase64" in args:
        base64.b64decode(str(args["BodyBase64"]), validate=True)  # ValueError when bad
    method = str(args.get("Method") or "GET").upper()
    if path == "/api/version" and method == "GET":
        status, body = 200, {"api": "0.1", "server": "1.10.3", "text": "OctoPrint 1.10.3"}
    else:
        status, body = 404, {"error": "Not found"}
    response = {
        "StatusCode": status,
        "Headers": {"Content-Type": "application/json"},
        "Url": f"http://{sim.state.plugin.connection['LocalIp']}{path}",
        "BodySizeBytes": len(json.dumps(body)),
        "BodyAsText": None,
        "BodyAsJson": body,
        "BodyAsBase64": None,
    }
    return {"Path": path, "Method": method}, response, status >= 400


def _send_websocket(sim: SimulatorCore, request: dict[str, Any]) -> Any:
    method = request.get("Method", request.get("Cmd"))
    params = request.get("Params", request.get("Data")) or {}
    if isinstance(method, int) and not isinstance(method, bool):  # Elegoo SDCP
        echo = {"Cmd": method, "Data": params}
        return echo, {"Id": "", "Data": {"Cmd": method, "Data": {"Ack": 0}}}, False
    if not isinstance(method, str) or not method:
        raise ValueError("The 'Request' object must include a non-empty 'Method'.")
    echo = {"Method": method, "Params": params}
    if method == "printer.objects.query":
        result: Any = {"eventtime": 1234.5, "status": {"heater_bed": {"temperature": 60.1}}}
    elif method.startswith(("printer.", "server.", "machine.")):
        result = "ok"
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        return echo, {"jsonrpc": "2.0", "error": error, "id": 1}, True
    return echo, {"jsonrpc": "2.0", "result": result, "id": 1}, False


def _send_mqtt(sim: SimulatorCore, request: dict[str, Any]) -> Any:
    serial = sim.state.plugin.connection.get("SerialNumber") or "sim"
    if sim.state.plugin.platform == "elegoo_cc2":
        method = request.get("Method", request.get("method"))
        if not isinstance(method, int) or isinstance(method, bool):
            raise ValueError("This Elegoo CC2 printer requires an integer 'Method' id.")
        topic = f"elegoo/{serial}/oe/api_"
        payload = {"method": method, "params": request.get("Params") or {}}
        answer = {"id": 1, "method": method, "result": {"error_code": 0}}
        return (topic + "request", payload), (topic + "response", answer), False
    body: Any = next(iter(request.values()), {}) if request else {}
    answer = {
        next(iter(request), "print"): {
            **(body if isinstance(body, dict) else {}),
            "result": "success",
        }
    }
    return (f"device/{serial}/request", request), (f"device/{serial}/report", answer), False


def _mqtt_echo(topic_payload: tuple[str, Any]) -> dict[str, Any]:
    return {"Topic": topic_payload[0], "Payload": topic_payload[1], "Qos": 0, "Retain": False}


def _timeout_sec(args: dict[str, Any]) -> int:
    value = args.get("TimeoutSec", args.get("timeoutSec"))
    if value is None:
        return 10
    if isinstance(value, bool) or not float(value).is_integer() or not 1 <= float(value) <= 1800:
        raise ValueError("The optional 'TimeoutSec' field must be an integer from 1 to 1800.")
    return int(float(value))


def _send_command(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    if args is None:
        return envelope(sim, 400, error="The send-command request body was empty.")
    transport = args.get("TransportType", args.get("transportType"))
    if not isinstance(transport, str) or transport.lower() not in ("http", "websocket", "mqtt"):
        return envelope(sim, 400, error="'TransportType' must be 'http', 'websocket' or 'mqtt'.")
    transport = transport.lower()
    request = args.get("Request", args.get("request"))
    if not isinstance(request, dict):
        return envelope(sim, 400, error="The send-command 'Request' must be a JSON object.")
    if transport not in sim.state.plugin.transports:
        return envelope(sim, 788, error=f"This printer does not take TransportType '{transport}'.")
    wait = args.get("WaitForResponse", True) is not False
    try:
        timeout = _timeout_sec(args)
        if transport == "http":
            echo, response, is_error = _send_http(sim, args)
            wait = True  # http always waits
        elif transport == "websocket":
            echo, response, is_error = _send_websocket(sim, request)
        else:
            sent, answer, is_error = _send_mqtt(sim, request)
            echo, response = _mqtt_echo(sent), _mqtt_echo(answer)
    except (ValueError, TypeError) as err:
        return envelope(sim, 400, error=str(err))
    result = {
        "TransportType": transport,
        "Request": echo,
        "ResponseReceived": wait,
        "Response": response if wait else None,
        "IsError": is_error if wait else False,
        "WaitForResponse": wait,
        "TimeoutSec": timeout,
    }
    return envelope(sim, 200, result)


def _files(sim: SimulatorCore) -> web.Response | None:
    plugin = sim.state.plugin
    if plugin.file_roots is None:
        return envelope(sim, 788, error=unsupported_files(plugin.platform))
    return None


def _files_list(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    refusal = _files(sim)
    if refusal is not None:
        return refusal
    roots = sim.state.plugin.file_roots or ()
    requested = (args or {}).get("root") or (args or {}).get("path")
    if requested:
        root = str(requested).strip("/").split("/")[0].lower()
        root = "gcode" if root == "gcodes" else root
        if root not in roots:
            return envelope(sim, 400, error=f"Unsupported file root '{requested}'.")
        roots = (root,)
    return envelope(sim, 200, {"Root": _tree(sim, roots)})


def _file_path(
    sim: SimulatorCore, args: dict[str, Any] | None, roots: tuple[str, ...]
) -> str | web.Response:
    """The file a command names, or the plugin's refusal (788 without files, 400)."""
    refusal = _files(sim)
    if refusal is not None:
        return refusal
    try:
        return check_file_path(args, roots)
    except ValueError as err:
        return envelope(sim, 400, error=str(err))


def _files_details(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    path = _file_path(sim, args, sim.state.plugin.details_roots)
    if isinstance(path, web.Response):
        return path
    simfile = sim.files.get(path)
    if simfile is None:
        return envelope(sim, 404, error=f"No file was found on the printer at '{path}'.")
    details: dict[str, Any] = {
        "VirtualPath": path,
        "PlatformPath": platform_path(path),
        "FileName": path.rsplit("/", 1)[-1],
        "SizeBytes": simfile.size,
        "ModifiedTimeSec": int(simfile.modified),
    }
    platform = sim.state.plugin.platform
    if platform != "bambu":  # Bambu's FTP knows the size and time only
        details.update(_DETAILS_OCTOPRINT if platform == "octoprint" else _DETAILS_MOONRAKER)
    return envelope(sim, 200, details)


def _files_delete(sim: SimulatorCore, args: dict[str, Any] | None) -> web.Response:
    path = _file_path(sim, args, sim.state.plugin.writable_roots)
    if isinstance(path, web.Response):
        return path
    if path not in sim.files:
        return envelope(sim, 404, error="files/delete failed: file was not found.")
    sim.files.files.pop(path)
    return envelope(sim, 200, {"VirtualPath": path, "PlatformPath": platform_path(path)})


#: What files/details adds on OctoPrint (its analysis) and on Moonraker (slicer metadata).
_DETAILS_OCTOPRINT: Final = {
    "EstPrintTimeSec": 5025,
    "EstFilamentUsedMm": 3120,
    "ObjectHeightMm": 48.0,
    "PlatformDetails": {"gcodeAnalysis": {"estimatedPrintTime": 5025.5}},
}
_DETAILS_MOONRAKER: Final = {
    "EstPrintTimeSec": 5025,
    "EstFilamentUsedMm": 3120,
    "EstFilamentWeightMg": 9310,
    "LayerCount": 240,
    "LayerHeightMm": 0.2,
    "FirstLayerHeightMm": 0.25,
    "ObjectHeightMm": 48.0,
    "NozzleDiameterMm": 0.4,
    "FilamentType": "PLA",
    "FilamentName": "Generic PLA",
    "BedTempC": 60.0,
    "HotendTempC": 215.0,
    "Slicer": "PrusaSlicer",
    "SlicerVersion": "2.8.1",
    "ThumbnailCount": 1,
    "PlatformDetails": {"slicer": "PrusaSlicer", "estimated_time": 5025},
}

_HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "status": _status,
    "list-webcam": _webcams,
    "webcam/list": _webcams,
    "set-default-webcam": _set_default_webcam,
    "get-connection-info": _connection_info,
    "pause": _transition(("printing",), "paused", "The printer is not printing"),
    "resume": _transition(("paused",), "printing", "The printer is not paused"),
    "cancel": _transition(("printing", "paused"), "cancelled", "There is no print to cancel"),
    "start": _start,
    "set-light": _set_light,
    "move-axis": _move_axis,
    "extrude": _extrude,
    "set-temp": _set_temp,
    "home": _home,
    "send-command": _send_command,
    "files/list": _files_list,
    "files/details": _files_details,
    "files/delete": _files_delete,
}


async def command(request: web.Request) -> web.StreamResponse:
    """Every JSON command of the plugin API (any HTTP method, as the plugin ignores it)."""
    sim = simulator_of(request)
    plugin = sim.state.plugin
    name = request.match_info["command"].lower()
    try:
        args = await command_args(request)
    except ValueError as err:
        return envelope(sim, 751, error=str(err))
    plugin.commands.append((name, args if args is not None else {}))
    if name in plugin.failures:
        status, error = plugin.failures[name]
        return envelope(sim, status, error=error)
    handler = _HANDLERS.get(name)
    if handler is None:
        return envelope(sim, 754, error=UNKNOWN_COMMAND)
    return handler(sim, args)


def setup(app: web.Application) -> None:
    """Add the plugin command routes (after the raw file and webcam routes)."""
    app.router.add_route("*", PREFIX + "{command:.+}", command)
