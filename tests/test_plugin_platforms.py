"""The plugin API on every platform the simulator plays, and the plugin's wire quirks.

``Simulator(platform=...)`` answers as the real plugin does on each platform (the shapes
``make plugin-conformance`` checks against the plugin's own code): these tests hold the
simulator to that and the client to the real plugin's media type, envelopes and statuses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import oe_async
from oe_async import (
    CommandResult,
    Features,
    HTTPCommand,
    MQTTCommand,
    OctoEverywhere,
    PluginConnectionInfo,
    PrinterConnection,
    WebSocketCommand,
)
from oe_async._plugin_wire import content_error, is_json_type
from oe_async.diagnostics import redact
from oe_async.plugin_commands import HTTPReply
from oe_async.testing import Simulator
from oe_async.testing.plugin_state import PLATFORMS

from . import doc_examples
from .helpers import listdir, write_bytes

COMMANDS: dict[str, Any] = {
    "http": HTTPCommand(path="/api/version"),
    "websocket": WebSocketCommand(method="printer.objects.query", params={"objects": {}}),
    "mqtt": MQTTCommand(request={"pushing": {"sequence_id": "1", "command": "pushall"}}),
}


@pytest_asyncio.fixture(params=PLATFORMS)
async def platform_printer(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, Simulator, PrinterConnection]]:
    async with Simulator(platform=request.param) as sim, sim.client() as oe:
        yield request.param, sim, oe.printer(sim.app_connection())


# ---------------------------------------------------------------------------- per platform


async def test_every_platform_answers_like_its_plugin(
    platform_printer: tuple[str, Simulator, PrinterConnection],
) -> None:
    name, sim, printer = platform_printer
    plugin = printer.plugin
    status = await plugin.status()
    assert status.features == Features(sim.state.plugin.features)
    assert (status.job.lights is None) == (name in ("octoprint", "prusalink"))
    assert await plugin.ping() >= 0
    info = await plugin.connection_info()
    assert info.local_ip is not None
    cams = await plugin.webcams()
    assert cams.webcams
    snap = await printer.webcam.snapshot()  # the default camera, on every platform
    assert snap.data.startswith(b"\xff\xd8")
    if name == "prusalink":  # a snapshot camera: no stream (754)
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            async with printer.webcam.frames() as frames:
                await anext(frames)
        assert excinfo.value.plugin_status == 754
    else:
        async with printer.webcam.frames() as frames:
            assert (await anext(frames)).data.startswith(b"\xff\xd8")
    (transport,) = sim.state.plugin.transports
    command = COMMANDS[transport]
    if name == "elegoo_cc2":  # its MQTT commands are {"Method": <int>, "Params": {...}}
        command = MQTTCommand(request={"Method": 1002, "Params": {}})
    result = await plugin.send_command(command)
    assert result.transport == transport
    for other, command in COMMANDS.items():
        if other != transport:
            with pytest.raises(oe_async.UnsupportedOnPlatformError):
                await plugin.send_command(command)


async def test_platforms_without_files_or_start_say_788_everywhere(
    platform_printer: tuple[str, Simulator, PrinterConnection], tmp_path: Path
) -> None:
    name, sim, printer = platform_printer
    plugin = printer.plugin
    if sim.state.plugin.file_roots is not None:
        pytest.skip("this platform has file commands")
    for call in (
        plugin.list_files,
        lambda: plugin.file_details("gcode/a.gcode"),
        lambda: plugin.upload_file("gcode/a.gcode", b"G28\n"),
        lambda: plugin.delete_file("gcode/a.gcode"),
        lambda: plugin.download_file("gcode/a.gcode", tmp_path / "a.gcode"),
    ):
        with pytest.raises(oe_async.UnsupportedOnPlatformError):
            await call()
    with pytest.raises(oe_async.UnsupportedOnPlatformError):  # a raw 400 with Status 788
        async with plugin.stream_file("gcode/a.gcode"):
            pass
    assert await listdir(tmp_path) == []
    if name.startswith("elegoo"):
        with pytest.raises(oe_async.UnsupportedOnPlatformError):
            await plugin.start("gcode/a.gcode")


async def test_secrets_of_the_connection_info_stay_hidden(
    platform_printer: tuple[str, Simulator, PrinterConnection],
) -> None:
    _, sim, printer = platform_printer
    info = await printer.plugin.connection_info()
    for secret in sim.state.plugin.secrets():
        assert secret in (info.access_code, info.api_key, info.username, info.password)
        assert secret not in repr(info)
        assert secret not in str(info)
    cams = await printer.plugin.webcams()
    assert all(secret not in repr(cams) for secret in sim.state.plugin.secrets())
    import attrs  # noqa: PLC0415

    shown = json.dumps(redact(attrs.asdict(info)))
    assert all(secret not in shown for secret in sim.state.plugin.secrets())


async def test_add_printer_plays_a_platform() -> None:
    async with Simulator() as sim, sim.client() as oe:
        bambu = await sim.add_printer(platform="bambu", printer_name="X1C")
        status = await oe.printer(bambu.app_connection()).plugin.status()
        assert status.features == Features.LIGHT | Features.PRINT_START
        default = await oe.printer(sim.app_connection()).plugin.status()
        assert default.features == Features(63)


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="bambu"):
        Simulator(platform="marlin")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the wire


async def test_the_simulator_answers_text_json(printer: PrinterConnection) -> None:
    async with printer.request("GET", "/octoeverywhere-command-api/status") as resp:
        assert resp.content_type == "text/json"
        assert (await resp.json(content_type=None))["Status"] == 200
    async with printer.request("POST", "/octoeverywhere-command-api/no-such-command") as resp:
        assert resp.status == 200
        assert (await resp.json(content_type=None))["Status"] == 754


async def test_upload_decodes_text_json(printer: PrinterConnection, sim: Simulator) -> None:
    uploaded = await printer.plugin.upload_file("gcode/a.gcode", b"G28\n")
    assert uploaded.virtual_path == "gcode/a.gcode"
    assert uploaded.platform_path == "a.gcode"
    assert uploaded.size_bytes == 4
    assert uploaded.printer_response == {"done": True, "files": {"local": {"path": "a.gcode"}}}
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await printer.plugin.upload_file("logs/a.log", b"x")  # not a writable root
    assert excinfo.value.plugin_status == 400


async def test_stream_file_keeps_the_plugin_status(
    printer: PrinterConnection, sim: Simulator
) -> None:
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        async with printer.plugin.stream_file("gcode/missing.gcode"):
            pass
    assert excinfo.value.plugin_status == 404
    sim.files.add("gcode/a.gcode", b"G28\n")
    for status, error in (
        (785, oe_async.PrinterSoftwareNotConnectedError),
        (789, oe_async.PluginNotAuthorizedError),
    ):
        sim.state.plugin.failures["files/download"] = (status, "lost it")
        with pytest.raises(error):
            async with printer.plugin.stream_file("gcode/a.gcode"):
                pass
    del sim.state.plugin.failures["files/download"]
    async with printer.plugin.stream_file("gcode/a.gcode") as chunks:
        assert b"".join([c async for c in chunks]) == b"G28\n"


async def test_an_old_plugin_answering_a_download_with_an_envelope(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    """A plugin without file commands answers HTTP 200 ``{"Status": 754}``: not a file."""
    sim.files.add("gcode/a.gcode", b"G28\n")
    body = json.dumps({"Status": 754, "Error": "The command path didn't match"}).encode()
    sim.fail(
        200,
        path="/octoeverywhere-command-api/files/download",
        body=body,
        headers={"Content-Type": "text/json"},
    )
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        await printer.plugin.download_file("gcode/a.gcode", tmp_path / "a.gcode")
    assert excinfo.value.plugin_status == 754
    assert await listdir(tmp_path) == []
    with pytest.raises(oe_async.PluginCommandFailedError):
        async with printer.plugin.stream_file("gcode/a.gcode"):
            pass


async def test_a_webcam_envelope_is_never_a_frame(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.webcams = []
    for call in (
        printer.webcam.snapshot,
        lambda: printer.webcam.snapshot(index=0),
        lambda: printer.webcam.snapshot(from_stream=True),
    ):
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            await call()
        assert excinfo.value.plugin_status == 754
    before = len(sim.requests_to("relay", "*/webcam/stream"))
    with pytest.raises(oe_async.PluginCommandFailedError):  # permanent: never retried
        async with printer.webcam.frames(reconnect=True) as frames:
            await anext(frames)
    assert len(sim.requests_to("relay", "*/webcam/stream")) == before + 1
    # A printer's own URL that answers JSON is no image either.
    sim.fail(
        200,
        path="/webcam/",
        body=b'{"error": "no camera"}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(oe_async.UnexpectedResponseError, match="JSON"):
        await printer.webcam.snapshot("/webcam/?action=snapshot")


async def test_index_out_of_range_is_the_first_camera(
    printer: PrinterConnection, sim: Simulator
) -> None:
    frame = await printer.webcam.snapshot(index=7)  # what the plugin does: camera 0
    assert frame.transform == "flipv rotate=90"


async def test_default_webcam_follows_set_default_webcam(
    printer: PrinterConnection, sim: Simulator
) -> None:
    await printer.plugin.set_default_webcam("ROOM")
    assert (await printer.plugin.webcams()).default_index == 1
    frame = await printer.webcam.snapshot()
    assert frame.transform == "none"  # the second camera's settings
    assert sim.state.plugin.commands[0] == ("set-default-webcam", {"Name": "ROOM"})


async def test_send_command_shapes(printer: PrinterConnection, sim: Simulator) -> None:
    plugin = printer.plugin
    http = await plugin.send_command(HTTPCommand(path="/api/version"), timeout_sec=45)
    assert isinstance(http, CommandResult)
    assert http.timeout_sec == 45
    assert http.http is not None
    assert (http.http.status, http.http.json["server"]) == (200, "1.10.3")
    assert http.mqtt is None
    missing = await plugin.send_command(HTTPCommand(path="/nope", method="POST", json={"a": 1}))
    assert missing.is_error
    assert missing.http is not None
    assert not missing.http.ok
    sent = sim.state.plugin.commands[-1][1]
    assert sent["Request"] == {"a": 1}
    assert sent["Method"] == "POST"
    ws = await plugin.send_command(WebSocketCommand(method="no.such"), wait_for_response=True)
    assert ws.is_error
    quick = await plugin.send_command(COMMANDS["mqtt"], wait_for_response=False)
    assert (quick.response_received, quick.response) == (False, None)
    assert quick.mqtt is None
    assert quick.mqtt_request is not None
    assert quick.mqtt_request.payload == {"pushing": {"sequence_id": "1", "command": "pushall"}}
    answered = await plugin.send_command(COMMANDS["mqtt"])
    assert answered.mqtt is not None
    assert answered.mqtt.topic is not None
    assert answered.mqtt.topic.endswith("/report")
    await plugin.send_command(
        HTTPCommand(path="/api/files", method="PUT", data=b"\x00\x01", headers={"X-A": "b"})
    )
    assert sim.state.plugin.commands[-1][1]["BodyBase64"] == "AAE="
    assert "X-A" in repr(HTTPCommand(path="/x", headers={"X-A": "secret-value"}))
    assert "secret-value" not in repr(HTTPCommand(path="/x", headers={"X-A": "secret-value"}))


async def test_send_command_deadline_covers_timeout_sec(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.latency = 0.2
    result = await printer.plugin.send_command(COMMANDS["http"], timeout_sec=1)
    assert result.timeout_sec == 1  # 1 s at the plugin, 16 s for the whole call


# ---------------------------------------------------------------------------- pure parts


def test_http_reply_bodies() -> None:
    base = {"StatusCode": 201, "Headers": {"A": 1}, "Url": "http://x/y", "BodySizeBytes": 2}
    text = CommandResult(transport="http", response={**base, "BodyAsText": "hi"}).http
    assert isinstance(text, HTTPReply)
    assert (text.body, text.text, text.json, text.headers) == (b"hi", "hi", None, {"A": "1"})
    binary = CommandResult(transport="http", response={**base, "BodyAsBase64": "AAE="}).http
    assert binary is not None
    assert binary.body == b"\x00\x01"
    assert CommandResult(transport="http", response={"no": "status"}).http is None
    assert CommandResult(transport="websocket", response=base).http is None


def test_connection_info_blank_values_are_none() -> None:
    info = PluginConnectionInfo(local_ip="", access_code="", api_key="k", password="p")
    assert (info.local_ip, info.access_code, info.api_key) == (None, None, "k")
    assert repr(info).count("***") == 2


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        (b'{"Status": 754, "Error": "x"}', oe_async.PluginCommandFailedError, 754),
        (b'{"Status": 785}', oe_async.PrinterSoftwareNotConnectedError, 785),
        (b'{"Status": 200, "Result": {}}', oe_async.UnexpectedResponseError, None),
        (b"[1, 2]", oe_async.UnexpectedResponseError, None),
        (b"not json", oe_async.UnexpectedResponseError, None),
        (b"[" * 100_000, oe_async.UnexpectedResponseError, None),
    ],
)
def test_content_error(body: bytes, error: type, status: int | None) -> None:
    err = content_error(body, what="the webcam")
    assert isinstance(err, error)
    if status is not None:
        assert getattr(err, "plugin_status", None) == status


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/json", True),
        ("application/json; charset=utf-8", True),
        ("application/problem+json", True),
        ("image/jpeg", False),
        ("multipart/x-mixed-replace; boundary=frame", False),
        ("", False),
    ],
)
def test_json_media_types(content_type: str, expected: bool) -> None:
    assert is_json_type(content_type) is expected


async def test_the_any_feature_default_is_kept(oe: OctoEverywhere, sim: Simulator) -> None:
    assert sim.state.plugin.platform is None
    status = await oe.printer(sim.app_connection()).plugin.status()
    assert status.features == Features(63)
    assert status.platform_version == "OctoPrint 1.10.3"


async def test_the_any_printer_guide_example_runs(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    await write_bytes(tmp_path / "part.gcode", b"G28\n")
    await loop.run_in_executor(None, monkeypatch.chdir, tmp_path)  # "part.gcode" is relative
    namespace: dict[str, Any] = {
        "printer": printer,
        "show": lambda done, total: None,
        **{name: getattr(oe_async, name) for name in oe_async.__all__},
    }
    page = "docs/plugin.md"
    await doc_examples.run(page, doc_examples.block(page, "send_command("), namespace)
    assert namespace["info"].access_code is not None
    assert namespace["result"].mqtt is not None
    assert sim.uploads[-1].path == "gcode/part.gcode"
