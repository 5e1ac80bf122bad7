"""``printer.plugin`` and the default webcam against the REAL OctoEverywhere plugin.

Every test runs once per platform of the plugin (OctoPrint, Moonraker, Bambu Lab,
PrusaLink, Elegoo, Elegoo Centauri Carbon 2): the request must be accepted, every field of
the real answer must reach our models with its type, and every failure the plugin reports
must raise its exception class. ``make plugin-conformance`` runs this file; anywhere the
plugin's source or requirements are missing it skips, saying why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

import pytest

import oe_async
from oe_async import (
    CommandResult,
    Features,
    HTTPCommand,
    JobState,
    MQTTCommand,
    PluginConnectionInfo,
    WebSocketCommand,
)
from oe_async._convert import converter
from tests.helpers import listdir, read_bytes

from .conftest import UNAVAILABLE, World

if UNAVAILABLE is not None:
    pytest.skip(UNAVAILABLE, allow_module_level=True)

FEATURES: Final = {
    "octoprint": Features.PRINT_START,
    "moonraker": Features(63),
    "bambu": Features.LIGHT | Features.PRINT_START,
    "prusalink": Features.PRINT_START,
    "elegoo": Features.LIGHT | Features.HOMING,
    "elegoo_cc2": Features.LIGHT | Features.AXIS_MOVEMENT | Features.HOMING | Features.TEMPERATURE,
}
#: Platforms with the plugin's file commands (the rest answer 788).
FILES: Final = frozenset({"octoprint", "moonraker", "bambu"})
LIGHT_NAME: Final = {"moonraker": "caselight"}
#: Platforms whose printer connection has credentials the plugin can lose (789).
AUTH_789: Final = frozenset({"moonraker", "bambu", "prusalink", "elegoo_cc2"})


def assert_carried(raw: Any, ours: Any, where: str = "$") -> None:
    """Every key and value of the plugin's answer is in ours, with a matching JSON type."""
    if isinstance(raw, dict):
        assert isinstance(ours, dict), f"{where}: an object became {type(ours).__name__}"
        for key, value in raw.items():
            assert key in ours, f"{where}.{key} was dropped"
            assert_carried(value, ours[key], f"{where}.{key}")
    elif isinstance(raw, list):
        assert isinstance(ours, list), f"{where}: a list became {type(ours).__name__}"
        assert len(raw) == len(ours), f"{where}: {len(raw)} items became {len(ours)}"
        for i, (a, b) in enumerate(zip(raw, ours, strict=True)):
            assert_carried(a, b, f"{where}[{i}]")
    elif isinstance(raw, bool) or raw is None:
        assert ours is raw, f"{where}: {raw!r} became {ours!r}"
    elif isinstance(raw, int | float):
        assert isinstance(ours, int | float), f"{where}: {raw!r} became {ours!r}"
        assert not isinstance(ours, bool), f"{where}: {raw!r} became {ours!r}"
        assert ours == raw, f"{where}: {raw!r} became {ours!r}"
    else:
        assert ours == raw, f"{where}: {raw!r} became {ours!r}"


def result_of(world: World, command: str) -> Any:
    answer = world.host.last_json(command)
    assert answer["Status"] == 200, answer
    return answer["Result"]


# ---------------------------------------------------------------------------- status


async def test_status_carries_every_field(world: World) -> None:
    plugin = world.printer.plugin
    for materials in (False, True):
        status = await plugin.status(include_material_system=materials)
        raw = result_of(world, "status")
        assert_carried(raw, converter.unstructure(status))
        assert plugin.last_status is status
    name = world.platform.name
    assert status.features == FEATURES[name]
    assert status.job.state is JobState.PRINTING
    assert status.job.material_system is not None
    assert isinstance(status.job.current_print.temps.hotend_actual, float)
    assert status.webcams is not None
    assert status.webcams.webcams[0].stream_url is None  # the status leaves URLs out
    if name in ("octoprint", "prusalink"):  # the platform cannot tell: unknown, not "none"
        assert status.job.lights is None
    else:
        assert status.job.lights
        assert status.job.lights[0].name == LIGHT_NAME.get(name, "chamber")


async def test_status_of_a_lost_printer(world: World) -> None:
    world.platform.connected = False
    with pytest.raises(oe_async.PrinterSoftwareNotConnectedError) as excinfo:
        await world.printer.plugin.status()
    assert excinfo.value.plugin_status == 785
    assert excinfo.value.temporary
    world.platform.connected = True
    if world.platform.name in AUTH_789:  # OctoPrint's plugin runs inside it; SDCP has none
        world.platform.auth_ok = False
        with pytest.raises(oe_async.PluginNotAuthorizedError) as excinfo:
            await world.printer.plugin.status()
        assert excinfo.value.needs_user_action


async def test_too_many_clients(world: World) -> None:
    if world.platform.name != "elegoo":
        pytest.skip("only Elegoo's SDCP limits its clients (787)")
    world.platform.client.too_many_clients = True
    with pytest.raises(oe_async.TooManyClientsError) as excinfo:
        await world.printer.plugin.status()
    assert excinfo.value.plugin_status == 787
    with pytest.raises(oe_async.TooManyClientsError):
        await world.printer.plugin.pause()


# ---------------------------------------------------------------------------- plugin


async def test_ping(world: World) -> None:
    seconds = await world.printer.plugin.ping()
    assert 0 <= seconds < 30
    assert result_of(world, "ping") == {"Message": "Pong"}


async def test_connection_info(world: World) -> None:
    from .platforms import (  # noqa: PLC0415
        BAMBU_ACCESS_CODE,
        BAMBU_SERIAL,
        CC2_ACCESS_CODE,
        CC2_SERIAL,
        PRUSALINK_API_KEY,
        PRUSALINK_PASSWORD,
        PRUSALINK_USER,
    )

    info = await world.printer.plugin.connection_info()
    assert isinstance(info, PluginConnectionInfo)
    assert_carried(result_of(world, "get-connection-info"), converter.unstructure(info))
    assert info.local_ip == "127.0.0.1"
    assert info.local_port == world.backend.port
    secrets = {
        "bambu": (BAMBU_ACCESS_CODE, BAMBU_SERIAL),
        "elegoo_cc2": (CC2_ACCESS_CODE, CC2_SERIAL),
    }.get(world.platform.name)
    if secrets is not None:
        assert (info.access_code, info.serial_number) == secrets
    if world.platform.name == "prusalink":
        assert (info.api_key, info.username, info.password) == (
            PRUSALINK_API_KEY,
            PRUSALINK_USER,
            PRUSALINK_PASSWORD,
        )
    shown = repr(info)
    for secret in (info.access_code, info.api_key, info.username, info.password):
        if secret:
            assert secret not in shown
    assert "127.0.0.1" in shown


# ---------------------------------------------------------------------------- webcams


async def test_webcam_list_and_default(world: World) -> None:
    plugin = world.printer.plugin
    cams = await plugin.webcams()
    assert_carried(result_of(world, "webcam/list"), converter.unstructure(cams))
    assert cams.default_index == 0
    names = [cam.name for cam in cams.webcams]
    await plugin.set_default_webcam(names[-1].upper())  # the plugin matches any case
    assert result_of(world, "set-default-webcam") == {}
    assert (await plugin.webcams()).default_index == len(names) - 1
    await plugin.set_default_webcam("no such camera")  # accepted: index 0 again
    assert (await plugin.webcams()).default_index == 0
    with pytest.raises(oe_async.InvalidArgumentError):
        await plugin.set_default_webcam("")


async def test_default_camera_on_every_platform(world: World) -> None:
    """``snapshot()``/``frames()`` without path or index: the plugin's default camera."""
    webcam = world.printer.webcam
    snap = await webcam.snapshot(timeout=30)
    assert snap.data.startswith(b"\xff\xd8")
    if world.platform.name == "prusalink":  # a snapshot URL and no stream: 754
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            async with webcam.frames() as frames:
                await anext(frames)
        assert excinfo.value.plugin_status == 754
        return
    async with webcam.frames(read_timeout=30) as frames:
        first = await anext(frames)
        second = await anext(frames)
    assert first.data.startswith(b"\xff\xd8")
    assert second.index == first.index + 1
    paths = [path for _, path, _ in world.host.requests]
    assert "/octoeverywhere-command-api/webcam/snapshot" in paths
    assert "/octoeverywhere-command-api/webcam/stream" in paths


async def test_webcam_by_index_carries_its_orientation(world: World) -> None:
    cams = (await world.printer.plugin.webcams()).webcams
    for index, cam in enumerate(cams):
        frame = await world.printer.webcam.snapshot(index=index, timeout=30)
        assert (frame.flip_h, frame.flip_v, frame.rotation) == (
            cam.flip_h,
            cam.flip_v,
            cam.rotation,
        )


async def test_a_missing_webcam_is_the_plugins_error_not_a_frame(world: World) -> None:
    world.platform.webcam_settings.items = []
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await world.printer.webcam.snapshot()
    assert excinfo.value.plugin_status == 754
    status, headers, body = next(
        (s, h, b) for p, s, h, b in reversed(world.host.answers) if "webcam/snapshot" in p
    )
    assert status == 200  # the plugin's 754 comes with HTTP 200 and a JSON body
    assert headers["Content-Type"] == "text/json"
    assert json.loads(body)["Status"] == 754
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        async with world.printer.webcam.frames(index=0, reconnect=True) as frames:
            await anext(frames)
    assert excinfo.value.plugin_status == 754
    assert (await world.printer.plugin.webcams()).webcams == []


# ---------------------------------------------------------------------------- print jobs


async def test_pause_resume_cancel(world: World) -> None:
    plugin, platform = world.printer.plugin, world.platform
    await plugin.pause()
    await plugin.resume()
    await plugin.cancel()
    assert platform.sent  # the printer got the commands
    platform.connected = False
    # What each plugin says when it lost the printer: OctoPrint's sees "not printing"
    # (786), PrusaLink's "failed to send" (400), the rest "not connected" (785).
    expected = {
        "octoprint": oe_async.InvalidPrinterStateError,
        "prusalink": oe_async.PluginCommandFailedError,
    }.get(platform.name, oe_async.PrinterSoftwareNotConnectedError)
    with pytest.raises(expected):
        await plugin.pause()


async def test_pause_needs_a_print_where_the_platform_checks(world: World) -> None:
    if world.platform.name not in ("octoprint", "moonraker"):
        pytest.skip("this platform's plugin sends the pause whatever the state")
    world.platform.job = "idle"
    with pytest.raises(oe_async.InvalidPrinterStateError) as excinfo:
        await world.printer.plugin.pause()
    assert excinfo.value.plugin_status == 786
    with pytest.raises(oe_async.InvalidPrinterStateError):
        await world.printer.plugin.resume()


async def test_smart_pause_options_reach_the_plugin(world: World) -> None:
    await world.printer.plugin.pause(
        smart_pause=True,
        disable_hotend=True,
        disable_bed=False,
        z_lift_mm=5.0,
        retract_filament_mm=2,
        suppress_notification=True,
        show_smart_pause_popup=True,
    )
    if world.platform.name == "octoprint":  # the one platform that does the lift
        sent = " ".join(str(item) for item in world.platform.sent)
        assert "smart-pause-popup" in sent


async def test_start(world: World) -> None:
    plugin, name = world.printer.plugin, world.platform.name
    world.platform.job = "idle"
    world.backend.files.add("gcodes", "parts/benchy.gcode", b"G28\n")
    world.backend.files.add("gcodes", "plate.3mf", b"PK\x03\x04")
    if name in ("elegoo", "elegoo_cc2"):
        with pytest.raises(oe_async.UnsupportedOnPlatformError):
            await plugin.start("gcode/parts/benchy.gcode")
        return
    path = "gcode/plate.3mf" if name == "bambu" else "gcode/parts/benchy.gcode"
    started = (
        await plugin.start(path, plate=2, use_ams=False, ams_mapping=[1, -1], timelapse=True)
        if name == "bambu"
        else await plugin.start(path, storage="usb" if name == "prusalink" else None)
    )
    assert_carried(result_of(world, "start"), converter.unstructure(started))
    assert started.virtual_path == path
    if name == "bambu":
        sent = world.platform.sent[-1]["print"]
        assert sent["param"] == "Metadata/plate_2.gcode"
        assert sent["use_ams"] is False
        assert sent["ams_mapping"] == [1, -1]
        assert sent["timelapse"] is True
    if name == "prusalink":
        assert world.backend.prusalink_starts == ["usb/parts/benchy.gcode"]
        world.backend.prusalink_busy = True
        with pytest.raises(oe_async.InvalidPrinterStateError):
            await plugin.start(path)
    if name == "octoprint":
        assert world.backend.octoprint_jobs[-1] == (
            "parts/benchy.gcode",
            {"command": "select", "print": True},
        )
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            await plugin.start("gcode/missing.gcode")
        assert excinfo.value.plugin_status == 404


# ---------------------------------------------------------------------------- controls

CONTROLS: Final = {
    "set_light": (Features.LIGHT, lambda p, light: p.set_light(light, on=False)),
    "move_axis": (Features.AXIS_MOVEMENT, lambda p, _: p.move_axis("x", -2.5)),
    "home": (Features.HOMING, lambda p, _: p.home()),
    "extrude": (Features.EXTRUSION, lambda p, _: p.extrude(1.5, extruder=0)),
    "set_temp": (Features.TEMPERATURE, lambda p, _: p.set_temp(bed=0, tool=200)),
}


@pytest.mark.parametrize("control", sorted(CONTROLS))
async def test_controls(world: World, control: str) -> None:
    feature, call = CONTROLS[control]
    name = world.platform.name
    light = LIGHT_NAME.get(name, "chamber")
    plugin = world.printer.plugin
    if FEATURES[name] & feature:
        sent_before = len(world.platform.sent)
        await call(plugin, light)
        assert len(world.platform.sent) > sent_before
        return
    # The plugin refuses what the platform lacks (788) ...
    with pytest.raises(oe_async.UnsupportedOnPlatformError) as excinfo:
        await call(plugin, light)
    assert excinfo.value.plugin_status == 788
    # ... and once a status showed the feature bits, so does the client, without sending.
    await plugin.status()
    before = len(world.host.requests)
    with pytest.raises(oe_async.UnsupportedOnPlatformError):
        await call(plugin, light)
    assert len(world.host.requests) == before


async def test_control_arguments_the_plugin_refuses(world: World) -> None:
    if not FEATURES[world.platform.name] & Features.LIGHT:
        pytest.skip("no light control here")
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await world.printer.plugin.set_light("no such light", on=True)
    assert excinfo.value.plugin_status in (400, 752)


# ---------------------------------------------------------------------------- send-command

COMMANDS: Final[dict[str, Any]] = {
    "octoprint": HTTPCommand(path="/api/version"),
    "prusalink": HTTPCommand(path="/api/v1/status", headers={"Accept-Language": "en"}),
    "moonraker": WebSocketCommand(
        method="printer.objects.query", params={"objects": {"heater_bed": None}}
    ),
    "elegoo": WebSocketCommand(method=1, params={}),
    "bambu": MQTTCommand(request={"pushing": {"sequence_id": "7", "command": "pushall"}}),
    "elegoo_cc2": MQTTCommand(request={"Method": 1002, "Params": {}}),
}


async def test_send_command(world: World) -> None:
    plugin, name = world.printer.plugin, world.platform.name
    command = COMMANDS[name]
    result = await plugin.send_command(command, timeout_sec=20)
    assert isinstance(result, CommandResult)
    raw = result_of(world, "send-command")
    assert raw["TransportType"] == result.transport == command.transport
    assert result.response_received is True
    assert result.is_error is False
    assert result.timeout_sec == 20
    assert result.response == raw["Response"]
    assert result.request == raw["Request"]
    if command.transport == "http":
        reply = result.http
        assert reply is not None
        assert reply.status == 200
        assert reply.ok
        assert reply.json == raw["Response"]["BodyAsJson"]
        assert reply.headers["Content-Type"].startswith("application/json")
        assert "***" not in repr(reply)
        assert "bytes" in repr(reply)
    if command.transport == "mqtt":
        message = result.mqtt
        assert message is not None
        assert message.topic is not None
        assert message.topic.endswith(("/report", "/api_response"))
        assert result.mqtt_request is not None
    # Every other transport is the platform's "not here" (788).
    for other in COMMANDS.values():
        if other.transport != command.transport:
            with pytest.raises(oe_async.UnsupportedOnPlatformError):
                await plugin.send_command(other)
    # Fire and forget.
    if command.transport != "http":
        quick = await plugin.send_command(command, wait_for_response=False)
        assert quick.response_received is False
        assert quick.response is None
        assert quick.wait_for_response is False


async def test_send_command_failures(world: World) -> None:
    plugin, name = world.printer.plugin, world.platform.name
    if name == "octoprint":
        result = await plugin.send_command(HTTPCommand(path="/no/such/api"))
        assert result.is_error
        assert result.http is not None
        assert result.http.status == 404
    if name == "moonraker":
        result = await plugin.send_command(WebSocketCommand(method="no.such.method"))
        assert result.is_error
        assert result.response["error"]["code"] == -32601
    if name == "bambu":
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            await plugin.send_command(
                MQTTCommand(request={"print": {"command": "never-answers"}}), timeout_sec=1
            )
        assert excinfo.value.plugin_status == 752
    if name == "elegoo_cc2":
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            await plugin.send_command(MQTTCommand(request={"Method": "one"}))
        assert excinfo.value.plugin_status == 400
    world.platform.connected = False
    if name not in ("octoprint",):  # OctoPrint's is an HTTP call to itself: still up
        with pytest.raises(oe_async.PrinterSoftwareNotConnectedError):
            await plugin.send_command(COMMANDS[name])


@pytest.mark.parametrize(
    "bad",
    [
        lambda: HTTPCommand(path="http://192.0.2.1/api"),
        lambda: HTTPCommand(path="//evil/api"),
        lambda: HTTPCommand(path="api/version"),
        lambda: HTTPCommand(path="/api", json={"a": 1}, text="x"),
        lambda: WebSocketCommand(method=""),
        lambda: MQTTCommand(request=[1, 2]),  # type: ignore[arg-type]
    ],
)
def test_commands_the_plugin_would_refuse_are_refused_first(bad: Any) -> None:
    with pytest.raises(oe_async.InvalidArgumentError):
        bad()


@pytest.mark.parametrize("timeout_sec", [0, 1801, 1.5, True, "10"])
async def test_send_command_timeout_range(world: World, timeout_sec: Any) -> None:
    before = len(world.host.requests)
    with pytest.raises(oe_async.InvalidArgumentError, match="timeout_sec"):
        await world.printer.plugin.send_command(
            COMMANDS[world.platform.name], timeout_sec=timeout_sec
        )
    assert len(world.host.requests) == before


# ---------------------------------------------------------------------------- files


async def test_files_round_trip(world: World, tmp_path: Path) -> None:
    plugin, name = world.printer.plugin, world.platform.name
    if name not in FILES:
        for call in (
            plugin.list_files,
            lambda: plugin.file_details("gcode/a.gcode"),
            lambda: plugin.upload_file("gcode/a.gcode", b"G28\n"),
            lambda: plugin.delete_file("gcode/a.gcode"),
            lambda: plugin.download_file("gcode/a.gcode", tmp_path / "a.gcode"),
        ):
            with pytest.raises(oe_async.UnsupportedOnPlatformError):
                await call()
        with pytest.raises(oe_async.UnsupportedOnPlatformError):
            async with plugin.stream_file("gcode/a.gcode"):
                pass
        assert await listdir(tmp_path) == []
        return
    data = bytes(range(256)) * 4096 + b"; end\n"  # 1 MiB: several relay data messages
    uploaded = await plugin.upload_file("gcode/sub dir/part one.gcode", data)
    assert_carried(result_of(world, "files/upload"), converter.unstructure(uploaded))
    assert uploaded.virtual_path == "gcode/sub dir/part one.gcode"
    assert uploaded.size_bytes == len(data)
    stored = world.backend.files.get("gcodes", "sub dir/part one.gcode")
    assert stored is not None
    assert stored.data == data

    tree = await plugin.list_files("gcode")
    entries = {e.virtual_path: e for root in tree for e in root.walk()}
    entry = entries["gcode/sub dir/part one.gcode"]
    assert entry.size_bytes == len(data)
    assert isinstance(entry.modified_time_sec, float)
    assert not entry.is_folder
    assert entries["gcode/sub dir"].is_folder

    details = await plugin.file_details("gcode/sub dir/part one.gcode")
    assert_carried(result_of(world, "files/details"), converter.unstructure(details))
    assert details.size_bytes == len(data)
    assert details.file_name == "part one.gcode"
    if name == "moonraker":
        assert details.est_filament_weight_mg == 9310
        assert details.layer_height_mm == 0.2
        assert details.thumbnail_count == 1
        assert details.platform_details["slicer"] == "OrcaSlicer"

    dest = await plugin.download_file("gcode/sub dir/part one.gcode", tmp_path / "copy.gcode")
    assert hashlib.sha256(await read_bytes(dest)).digest() == hashlib.sha256(data).digest()
    async with plugin.stream_file("gcode/sub dir/part one.gcode") as chunks:
        assert b"".join([c async for c in chunks]) == data

    deleted = await plugin.delete_file("gcode/sub dir/part one.gcode")
    assert_carried(result_of(world, "files/delete"), converter.unstructure(deleted))
    assert world.backend.files.get("gcodes", "sub dir/part one.gcode") is None


async def test_file_errors_keep_their_plugin_status(world: World, tmp_path: Path) -> None:
    """A missing file is 404 and a lost printer 785, whichever call asks (items 1 and 3)."""
    plugin, name = world.printer.plugin, world.platform.name
    if name not in FILES:
        pytest.skip("no file commands on this platform (788, tested above)")
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await plugin.download_file("gcode/missing.gcode", tmp_path / "x.gcode")
    assert excinfo.value.plugin_status == 404
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        async with plugin.stream_file("gcode/missing.gcode"):
            pass
    assert excinfo.value.plugin_status == 404
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await plugin.delete_file("gcode/missing.gcode")
    assert excinfo.value.plugin_status == 404
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await plugin.upload_file("logs/x.log", b"x")  # a root the plugin will not write
    assert excinfo.value.plugin_status == 400
    assert await listdir(tmp_path) == []
    if name == "bambu":  # FTP: a lost connection and refused credentials keep their codes
        world.backend.files.add("gcodes", "a.gcode", b"G28\n")
        world.platform.connected = False
        with pytest.raises(oe_async.PrinterSoftwareNotConnectedError):
            async with plugin.stream_file("gcode/a.gcode"):
                pass
        with pytest.raises(oe_async.PrinterSoftwareNotConnectedError):
            await plugin.download_file("gcode/a.gcode", tmp_path / "a.gcode")
        world.platform.connected = True
        world.platform.auth_ok = False
        with pytest.raises(oe_async.PluginNotAuthorizedError):
            async with plugin.stream_file("gcode/a.gcode"):
                pass
        with pytest.raises(oe_async.PluginNotAuthorizedError):
            await plugin.list_files()


# ---------------------------------------------------------------------------- the simulator


def shape(value: Any) -> Any:
    """A JSON value's shape: object keys and value kinds (null fits any kind)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


#: Objects whose contents are the printer's, not the plugin's (an AMS, a slicer's metadata,
#: the printer's own HTTP headers).
FREE_FORM: Final = frozenset(
    {"MaterialSystem", "PlatformDetails", "PrinterResponse", "Headers", "BodyAsJson"}
)


def assert_same_shape(real: Any, sim: Any, where: str = "$") -> None:
    """``real`` and ``sim`` are :func:`shape` results; a null fits any kind."""
    if real is None or sim is None:
        return
    if isinstance(real, dict):
        assert isinstance(sim, dict), f"{where}: the simulator sent {sim!r}"
        assert set(sim) == set(real), f"{where}: keys {sorted(sim)} != the plugin's {sorted(real)}"
        for key in real:
            if key not in FREE_FORM:
                assert_same_shape(real[key], sim[key], f"{where}.{key}")
    elif isinstance(real, list):
        assert isinstance(sim, list), f"{where}: the simulator sent {sim!r}"
        if real and sim:
            assert_same_shape(real[0], sim[0], f"{where}[0]")
    else:
        assert real == sim, f"{where}: {sim} where the plugin sends {real}"


async def raw(printer: Any, method: str, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with printer.request(
        method, "/octoeverywhere-command-api/" + path, raise_for_status=False, **kwargs
    ) as resp:
        body = await resp.read()
        decoded = json.loads(body) if body and resp.content_type.endswith("json") else None
        return resp.status, resp.content_type, decoded


#: The requests both must answer alike: (method, command path, JSON body or None).
SHAPES: Final = [
    ("GET", "status?IncludeMaterialSystem=true", None),
    ("GET", "status", None),
    ("GET", "webcam/list", None),
    ("GET", "ping", None),
    ("GET", "get-connection-info", None),
    ("POST", "set-default-webcam", {"Name": "nope"}),
    ("POST", "no-such-command", None),
    ("POST", "set-light", {"Name": "no such light", "On": True}),
    ("POST", "move-axis", {"Axis": "X", "DistanceMm": 1.5}),
    ("POST", "home", None),
    ("POST", "extrude", {"Extruder": 0, "DistanceMm": 1}),
    ("POST", "set-temp", {"BedC": 50}),
    ("POST", "set-temp", {}),
    ("POST", "send-command", {"TransportType": "carrier-pigeon", "Request": {}}),
    ("POST", "send-command", {"TransportType": "http", "Request": {}, "Path": "/api/version"}),
    ("GET", "files/list", None),
    ("GET", "files/details?path=gcode/a.gcode", None),
    ("POST", "files/delete?path=gcode/missing.gcode", None),
    ("GET", "files/download?path=gcode/missing.gcode", None),
    ("PUT", "files/upload?path=logs/x.log", None),
    ("GET", "webcam/snapshot?index=0", None),
]


async def test_the_simulator_answers_like_the_plugin(world: World) -> None:
    """``Simulator(platform=...)``: the plugin's statuses, media types and shapes."""
    from oe_async.testing import Simulator  # noqa: PLC0415

    name = world.platform.name
    world.backend.files.add("gcodes", "a.gcode", b"G28\n")
    async with Simulator(platform=name) as sim, sim.client() as oe:
        sim.files.add("gcode/a.gcode", b"G28\n")
        sim.state.webcam.webcams = sim.state.webcam.webcams[:1]
        world.platform.webcam_settings.items = world.platform.webcam_settings.items[:1]
        twin = oe.printer(sim.app_connection())
        for method, path, body in SHAPES:
            kwargs: dict[str, Any] = {} if body is None else {"json": body}
            real = await raw(world.printer, method, path, **kwargs)
            ours = await raw(twin, method, path, **kwargs)
            where = f"{method} {path}"
            if path.startswith("webcam/snapshot"):  # an image both ways, no JSON to compare
                continue
            assert ours[:2] == real[:2], f"{where}: {ours[:2]} != the plugin's {real[:2]}"
            assert ours[2]["Status"] == real[2]["Status"], f"{where}: {ours[2]} vs {real[2]}"
            assert_same_shape(shape(real[2]), shape(ours[2]), where)
        # No camera: HTTP 200 with the plugin's 754 envelope, both ways.
        sim.state.webcam.webcams = []
        world.platform.webcam_settings.items = []
        for kind in ("snapshot", "stream"):
            real = await raw(world.printer, "GET", f"webcam/{kind}")
            ours = await raw(twin, "GET", f"webcam/{kind}")
            assert ours[:2] == real[:2] == (200, "text/json")
            assert ours[2]["Status"] == real[2]["Status"] == 754
