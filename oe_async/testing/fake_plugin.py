"""The simulator's OctoEverywhere plugin command API (``/octoeverywhere-command-api/``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from oe_async.testing._core import SimulatorCore, simulator_of
from oe_async.testing.files import SimFile

PREFIX = "/octoeverywhere-command-api/"
_ROOTS = {"gcode", "config", "logs"}


def envelope(
    sim: SimulatorCore, status: int, result: Any = None, error: str | None = None
) -> web.Response:
    """A plugin answer: always HTTP 200, the outcome in ``Status``."""
    body: dict[str, Any] = {"Status": status}
    if error is not None:
        body["Error"] = error
    if result is not None:
        body[sim.state.plugin.result_key] = result
    return web.json_response(body)


async def _args(request: web.Request) -> dict[str, Any] | None:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _status_result(sim: SimulatorCore, *, with_materials: bool) -> dict[str, Any]:
    plugin = sim.state.plugin
    job: dict[str, Any] = {
        "State": plugin.job_state,
        "SubState": plugin.sub_state,
        "Error": plugin.error,
        "Lights": plugin.lights or None,
        "CurrentPrint": {
            "Progress": 42.5,
            "DurationSec": 3600,
            "TimeLeftSec": 4800,
            "FileName": "benchy.gcode",
            "EstTotalFilUsedMm": 12345,
            "EstTotalFilWeightMg": 9876,
            "CurrentLayer": 62,
            "TotalLayers": 145,
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
    if with_materials:
        job["MaterialSystem"] = plugin.material_system
    webcams = [
        {k: v for k, v in cam.items() if not k.endswith("Url")} for cam in sim.state.webcam.webcams
    ]
    return {
        "JobStatus": job,
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
        "ListWebcams": {"DefaultIndex": sim.state.webcam.default_index, "Webcams": webcams},
    }


def _platform_path(virtual: str) -> str:
    return f"/home/pi/printer_data/{virtual}"


def _entry(simfile: SimFile, path: str, name: str) -> dict[str, Any]:
    return {
        "Type": "file",
        "Name": name,
        "VirtualPath": path,
        "PlatformPath": _platform_path(path),
        "SizeBytes": simfile.size,
        "ModifiedTimeSec": int(simfile.modified),
        "Permissions": "rw",
        "OctoPrintOrigin": "local",  # a platform-specific key, kept by clients in `extra`
    }


def _tree(sim: SimulatorCore, root: str | None) -> list[dict[str, Any]]:
    """The stored files as nested folders (roots: gcode, config, logs)."""
    roots: dict[str, dict[str, Any]] = {}
    for path, simfile in sorted(sim.files.files.items()):
        parts = path.split("/")
        if parts[0] not in _ROOTS or (root is not None and parts[0] != root):
            continue
        level = roots
        node: dict[str, Any] | None = None
        for depth, part in enumerate(parts[:-1]):
            virtual = "/".join(parts[: depth + 1])
            node = level.setdefault(
                part,
                {
                    "Type": "folder",
                    "Name": part,
                    "VirtualPath": virtual,
                    "PlatformPath": f"/home/pi/printer_data/{virtual}",
                    "Children": {},
                },
            )
            level = node["Children"]
        level[parts[-1]] = _entry(simfile, path, parts[-1])

    def listify(level: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for node in level.values():
            if node["Type"] == "folder":
                out.append({**node, "Children": listify(node["Children"])})
            else:
                out.append(node)
        return out

    return listify(roots)


Handler = Callable[[SimulatorCore, web.Request, dict[str, Any]], web.Response]


def _transition(allowed: tuple[str, ...], new_state: str, refusal: str) -> Handler:
    def handle(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
        plugin = sim.state.plugin
        if plugin.job_state not in allowed:
            return envelope(sim, 786, error=refusal)
        plugin.job_state = new_state
        return envelope(sim, 200, {})

    return handle


def _status(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    flag = request.query.get("IncludeMaterialSystem", "false").lower() in ("true", "1")
    return envelope(sim, 200, _status_result(sim, with_materials=flag))


def _webcams(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    settings = sim.state.webcam
    result = {"DefaultIndex": settings.default_index, "Webcams": settings.webcams}
    return envelope(sim, 200, result)


def _start(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    plugin = sim.state.plugin
    if plugin.job_state in ("printing", "paused"):
        return envelope(sim, 786, error="The printer is busy")
    path = args.get("Path")
    if not isinstance(path, str) or path not in sim.files:
        return envelope(sim, 751, error="File not found")
    plugin.job_state = "printing"
    return envelope(sim, 200, {})


def _set_light(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    light = next(
        (item for item in sim.state.plugin.lights if item["Name"] == args.get("Name")), None
    )
    if light is None or not isinstance(args.get("On"), bool):
        return envelope(sim, 400, error="No light with that name")
    light["On"] = args["On"]
    return envelope(sim, 200, {})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _move_axis(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    if args.get("Axis") not in ("X", "Y", "Z") or not _is_number(args.get("DistanceMm")):
        return envelope(sim, 400, error="No axis specified or invalid type")
    return envelope(sim, 200, {})


def _extrude(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    if type(args.get("Extruder")) is not int or not _is_number(args.get("DistanceMm")):
        return envelope(sim, 400, error="No extruder specified or invalid type")
    return envelope(sim, 200, {})


def _set_temp(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    limits = {"BedC": 75, "ChamberC": 75, "ToolC": 260}
    given = {k: v for k, v in args.items() if k in limits}
    if not given or not all(_is_number(v) for v in given.values()):
        return envelope(sim, 400, error="At least one heater must be specified")
    if any(value > limits[key] for key, value in given.items()):
        return envelope(sim, 400, error="Temperature too high")
    return envelope(sim, 200, {})


def _ok(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    return envelope(sim, 200, {})


def _files_list(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    root = request.query.get("root")
    if root is not None and root not in _ROOTS:
        return envelope(sim, 751, error="Unknown root")
    return envelope(sim, 200, _tree(sim, root))


def _files_details(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    path = request.query.get("path", "")
    if path not in sim.files:
        return envelope(sim, 404, error="File not found")
    details = {
        "VirtualPath": path,
        "Slicer": "PrusaSlicer 2.8.1",
        "EstPrintTimeSec": 5025,
        "FilamentUsedMm": 3120.5,
        "LayerHeightMm": 0.2,
        "FilamentType": "PLA",
    }
    return envelope(sim, 200, details)


def _files_delete(sim: SimulatorCore, request: web.Request, args: dict[str, Any]) -> web.Response:
    path = request.query.get("path", "")
    if path not in sim.files:
        return envelope(sim, 404, error="File not found")
    sim.files.files.pop(sim.files.normalise(path))
    return envelope(sim, 200, {"VirtualPath": path, "PlatformPath": _platform_path(path)})


_HANDLERS: dict[str, Handler] = {
    "status": _status,
    "list-webcam": _webcams,
    "webcam/list": _webcams,
    "pause": _transition(("printing",), "paused", "The printer is not printing"),
    "resume": _transition(("paused",), "printing", "The printer is not paused"),
    "cancel": _transition(("printing", "paused"), "cancelled", "There is no print to cancel"),
    "start": _start,
    "set-light": _set_light,
    "move-axis": _move_axis,
    "extrude": _extrude,
    "set-temp": _set_temp,
    "home": _ok,
    "files/list": _files_list,
    "files/details": _files_details,
    "files/delete": _files_delete,
}


async def command(request: web.Request) -> web.StreamResponse:
    """Every JSON command of the plugin API."""
    sim = simulator_of(request)
    plugin = sim.state.plugin
    name = request.match_info["command"].lower()
    args = await _args(request) if request.method == "POST" else dict(request.query)
    if args is None:
        return envelope(sim, 751, error="Failed to parse args")
    plugin.commands.append((name, args))
    if name in plugin.failures:
        status, error = plugin.failures[name]
        return envelope(sim, status, error=error)
    handler = _HANDLERS.get(name)
    if handler is None:
        return envelope(sim, 754, error="The command path didn't match any known commands.")
    return handler(sim, request, args)


def setup(app: web.Application) -> None:
    """Add the plugin command routes (after the raw file and webcam routes)."""
    app.router.add_route("GET", PREFIX + "{command:.+}", command)
    app.router.add_route("POST", PREFIX + "{command:.+}", command)
