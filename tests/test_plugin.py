"""The printer-agnostic plugin API: decoding, every command, validation, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from syrupy.assertion import SnapshotAssertion

import oe_async
from oe_async import Features, JobState, PrinterConnection
from oe_async._convert import structure
from oe_async.plugin_api import unwrap_envelope
from oe_async.plugin_api._files import entries as _entries
from oe_async.plugin_models import PrinterStatus
from oe_async.testing import Simulator

from .helpers import listdir, read_bytes

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class TestDecoding:
    def test_documented_status_example(self, snapshot: SnapshotAssertion) -> None:
        status = structure(
            unwrap_envelope(fixture("plugin_status_docs_example.json"), command="status"),
            PrinterStatus,
            what="x",
        )
        assert status.job.state is JobState.PRINTING
        assert (
            status.features
            == Features.LIGHT
            | Features.AXIS_MOVEMENT
            | Features.HOMING
            | Features.EXTRUSION
            | Features.TEMPERATURE
        )
        assert status.supports(Features.HOMING)
        assert not status.supports(Features.PRINT_START)
        assert attrs.asdict(status) == snapshot

    def test_result_colon_typo_unknown_bits_and_nulls(self, snapshot: SnapshotAssertion) -> None:
        status = structure(
            unwrap_envelope(fixture("plugin_status_result_colon.json"), command="status"),
            PrinterStatus,
            what="x",
        )
        assert status.job.state is JobState.IDLE
        assert status.job.lights is None  # null: the platform cannot tell, not "no lights"
        assert status.features & Features.PRINT_START
        assert int(status.features) == 100  # the unknown bit 64 is kept
        assert attrs.asdict(status) == snapshot

    def test_files_tree_keeps_platform_keys(self, snapshot: SnapshotAssertion) -> None:
        roots = _entries(
            unwrap_envelope(fixture("files_list_spec_example.json"), command="files/list")
        )
        assert [e.virtual_path for e in roots[0].walk()] == [
            "gcode",
            "gcode/benchy.gcode",
            "gcode/calibration",
            "gcode/calibration/cube.gcode",
        ]  # the broken entry is skipped, the rest survives
        benchy = roots[0].children[0]
        assert benchy.extra == {
            "MoonrakerMetadata": {"slicer": "OrcaSlicer", "estimated_time": 5025}
        }
        assert roots[0].is_folder
        assert not benchy.is_folder
        assert [attrs.asdict(e) for e in roots] == snapshot

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            (
                {"Status": 785, "Error": "Host not connected"},
                oe_async.PrinterSoftwareNotConnectedError,
            ),
            ({"Status": 786, "Error": "Not printing"}, oe_async.InvalidPrinterStateError),
            ({"Status": 787, "Error": "Busy"}, oe_async.TooManyClientsError),
            ({"Status": 788, "Error": "Nope"}, oe_async.UnsupportedOnPlatformError),
            ({"Status": 789, "Error": "No auth"}, oe_async.PluginNotAuthorizedError),
            ({"Status": 750, "Error": "Unknown"}, oe_async.PluginCommandFailedError),
            ({"Status": 754}, oe_async.PluginCommandFailedError),
            ({"Status": 400, "Error": "Bad args"}, oe_async.PluginCommandFailedError),
        ],
    )
    def test_envelope_failures(self, body: dict[str, Any], error: type) -> None:
        with pytest.raises(error) as excinfo:
            unwrap_envelope(body, command="x")
        assert excinfo.value.plugin_status == body["Status"]
        assert isinstance(excinfo.value, oe_async.PluginCommandError)
        if "Error" in body:
            assert excinfo.value.message == body["Error"]

    @pytest.mark.parametrize("body", [[], "x", {"Result": {}}, {"Status": "200"}, {"Status": True}])
    def test_not_an_envelope(self, body: object) -> None:
        with pytest.raises(oe_async.UnexpectedResponseError):
            unwrap_envelope(body, command="x")

    def test_temporary_flags(self) -> None:
        assert oe_async.PrinterSoftwareNotConnectedError().temporary
        assert oe_async.TooManyClientsError().temporary
        assert not oe_async.InvalidPrinterStateError().temporary


class TestCommands:
    async def test_status_with_and_without_materials(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        plain = await printer.plugin.status()
        assert plain.job.material_system is None
        assert printer.plugin.last_status == plain
        rich = await printer.plugin.status(include_material_system=True)
        assert rich.job.material_system is not None
        assert rich.job.material_system["Sources"][0]["Material"]["Type"] == "PLA"
        assert [r.query for r in sim.requests_to("relay", "*/status")] == [
            "",
            "IncludeMaterialSystem=true",
        ]
        assert rich.webcams is not None
        assert rich.webcams.webcams[0].name == "Nozzle cam"

    async def test_pause_resume_cancel(self, printer: PrinterConnection, sim: Simulator) -> None:
        await printer.plugin.pause(
            smart_pause=True, z_lift_mm=5.0, retract_filament_mm=2, disable_bed=True
        )
        assert sim.state.plugin.commands[-1] == (
            "pause",
            {"SmartPause": True, "DisableBed": True, "ZLiftMm": 5, "RetractFilamentMm": 2},
        )
        body = sim.state.plugin.commands[-1][1]
        assert type(body["ZLiftMm"]) is int  # the plugin declares ints
        assert type(body["RetractFilamentMm"]) is int
        with pytest.raises(oe_async.InvalidPrinterStateError, match="not printing"):
            await printer.plugin.pause()
        await printer.plugin.resume()
        await printer.plugin.cancel()
        assert sim.state.plugin.job_state == "cancelled"
        assert len(sim.requests_to("relay", "*/pause")) == 2  # a POST is never retried

    async def test_start_with_bambu_options(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.plugin.job_state = "idle"
        sim.files.add("gcode/plate.3mf", b"3mf")
        started = await printer.plugin.start(
            "gcode/plate.3mf", plate=2, use_ams=True, ams_mapping=[0, -1, 2], timelapse=False
        )
        assert started.virtual_path == "gcode/plate.3mf"
        assert started.platform_path == "plate.3mf"
        assert sim.state.plugin.commands[-1] == (
            "start",
            {
                "Path": "gcode/plate.3mf",
                "Plate": 2,
                "UseAms": True,
                "AmsMapping": [0, -1, 2],
                "Timelapse": False,
            },
        )
        assert sim.state.plugin.job_state == "printing"

    async def test_controls(self, printer: PrinterConnection, sim: Simulator) -> None:
        await printer.plugin.set_light("chamber", False)
        await printer.plugin.move_axis("z", -2.5)
        await printer.plugin.home()
        await printer.plugin.extrude(-1.5, extruder=1)
        await printer.plugin.set_temp(bed=0, tool=215, tool_number=0)
        assert sim.state.plugin.commands == [
            ("set-light", {"Name": "chamber", "On": False}),
            ("move-axis", {"Axis": "Z", "DistanceMm": -2.5}),
            ("home", {}),
            ("extrude", {"Extruder": 1, "DistanceMm": -1.5}),
            ("set-temp", {"BedC": 0.0, "ToolC": 215.0, "ToolNumber": 0}),
        ]
        assert sim.state.plugin.lights[0]["On"] is False
        assert all(r.authorization == sim.auth.header_value for r in sim.requests_to("relay"))

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda p: p.set_temp(), "at least one"),
            (lambda p: p.set_temp(bed=76), "bed must be between 0 and 75"),
            (lambda p: p.set_temp(chamber=-1), "chamber must be between 0 and 75"),
            (lambda p: p.set_temp(tool=261), "tool must be between 0 and 260"),
            (lambda p: p.set_temp(bed=float("nan")), "finite"),
            (lambda p: p.set_temp(bed=50, tool_number=1), "tool_number needs"),
            (lambda p: p.set_temp(tool=200, tool_number=-1), "tool_number"),
            (lambda p: p.move_axis("W", 1), "X, Y or Z"),
            (lambda p: p.move_axis("X", float("inf")), "finite number"),
            (lambda p: p.move_axis("X", True), "finite number"),
            (lambda p: p.extrude(float("nan")), "finite number"),
            (lambda p: p.extrude(5, extruder=-1), "extruder"),
            (lambda p: p.set_light("", True), "name"),
            (lambda p: p.set_light("chamber", "on"), "True or False"),
            (lambda p: p.start(""), "path"),
            (lambda p: p.start("a.3mf", plate=0), "plate"),
            (lambda p: p.start("a.3mf", ams_mapping=["x"]), "ams_mapping"),
            (lambda p: p.pause(z_lift_mm=-1), "z_lift_mm"),
            (lambda p: p.pause(z_lift_mm=2.5), "whole number"),
            (lambda p: p.pause(retract_filament_mm=101), "retract_filament_mm"),
            (lambda p: p.set_default_webcam(""), "name"),
            (lambda p: p.send_command(oe_async.MQTTCommand(request={}), timeout_sec=0), "1 to"),
            (lambda p: p.send_command({"TransportType": "http"}), "HTTPCommand"),
            (lambda p: p.pause(smart_pause="yes"), "smart_pause"),
            (lambda p: p.list_files("tmp"), "root"),
            (lambda p: p.file_details(""), "path"),
            (lambda p: p.delete_file(" "), "path"),
            (lambda p: p.status(include_material_system="true"), "include_material_system"),
        ],
    )
    async def test_validation_happens_before_any_request(
        self, printer: PrinterConnection, sim: Simulator, call: Any, message: str
    ) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            await call(printer.plugin)
        assert sim.requests == []

    @pytest.mark.parametrize(
        ("feature", "call"),
        [
            (Features.LIGHT, lambda p: p.set_light("chamber", True)),
            (Features.AXIS_MOVEMENT, lambda p: p.move_axis("X", 1)),
            (Features.HOMING, lambda p: p.home()),
            (Features.EXTRUSION, lambda p: p.extrude(1)),
            (Features.TEMPERATURE, lambda p: p.set_temp(bed=50)),
            (Features.PRINT_START, lambda p: p.start("gcode/a.gcode")),
        ],
    )
    async def test_missing_feature_bits_refuse_without_sending(
        self, printer: PrinterConnection, sim: Simulator, feature: Features, call: Any
    ) -> None:
        sim.state.plugin.features = int(Features(63) & ~feature)
        await printer.plugin.status()
        before = len(sim.requests)
        with pytest.raises(oe_async.UnsupportedOnPlatformError, match=feature.name):
            await call(printer.plugin)
        assert len(sim.requests) == before

    async def test_plugin_failures_map(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.state.plugin.failures["home"] = (789, "The plugin has no valid printer auth")
        with pytest.raises(
            oe_async.PluginNotAuthorizedError, match="no valid printer auth"
        ) as excinfo:
            await printer.plugin.home()
        assert excinfo.value.plugin_status == 789
        sim.state.plugin.failures["status"] = (785, "Host not connected")
        with pytest.raises(oe_async.PrinterSoftwareNotConnectedError):
            await printer.plugin.status()

    async def test_relay_errors_still_map(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.fail(601, path="/octoeverywhere-command-api/*")
        with pytest.raises(oe_async.PrinterOfflineError):
            await printer.plugin.status()

    async def test_result_colon_from_the_server(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.plugin.result_key = "Result:"
        status = await printer.plugin.status()
        assert status.job.state is JobState.PRINTING


class TestFiles:
    async def test_list_details_delete(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.files.add("gcode/a.gcode", b"G28")
        sim.files.add("gcode/sub/b.gcode", b"G28 X")
        sim.files.add("config/printer.cfg", b"[printer]")
        tree = await printer.plugin.list_files()
        assert [e.name for e in tree] == ["config", "gcode", "logs"]  # every root, empty too
        gcode = await printer.plugin.list_files("gcode")
        assert [e.virtual_path for e in gcode[0].walk()] == [
            "gcode",
            "gcode/sub",
            "gcode/sub/b.gcode",
            "gcode/a.gcode",
        ]
        # folders come first; OctoPrint's own keys are kept
        assert gcode[0].children[1].extra == {"Origin": "local", "Display": "a.gcode"}
        details = await printer.plugin.file_details("gcode/a.gcode")
        assert details.slicer == "PrusaSlicer"
        assert details.file_name == "a.gcode"
        assert details.size_bytes == 3
        assert details.platform_details == {"slicer": "PrusaSlicer", "estimated_time": 5025}
        deleted = await printer.plugin.delete_file("gcode/a.gcode")
        assert deleted.virtual_path == "gcode/a.gcode"
        assert "gcode/a.gcode" not in sim.files
        with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
            await printer.plugin.delete_file("gcode/a.gcode")
        assert excinfo.value.plugin_status == 404

    async def test_upload_and_download_through_the_transfer_machinery(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        data = b"G1 X1 Y1\n" * 200_000
        seen: list[int] = []
        uploaded = await printer.plugin.upload_file(
            "gcode/big part.gcode", data, progress=lambda d, t: seen.append(d)
        )
        assert uploaded.size_bytes == len(data)
        assert sim.uploads[-1].sha256 == hashlib.sha256(data).hexdigest()
        assert seen[-1] == len(data)
        request = sim.requests_to("relay", "*/files/upload")[0]
        assert request.method == "PUT"
        assert request.query == "path=gcode/big part.gcode"  # as the server decoded it
        dest = await printer.plugin.download_file("gcode/big part.gcode", tmp_path / "copy.gcode")
        assert (
            hashlib.sha256(await read_bytes(dest)).hexdigest() == hashlib.sha256(data).hexdigest()
        )
        async with printer.plugin.stream_file("gcode/big part.gcode") as chunks:
            assert b"".join([c async for c in chunks]) == data

    async def test_a_raw_endpoint_error_with_a_json_body_maps(
        self, printer: PrinterConnection, tmp_path: Path
    ) -> None:
        with pytest.raises(oe_async.PluginCommandFailedError, match="not found") as excinfo:
            await printer.plugin.download_file("gcode/missing.gcode", tmp_path / "x.gcode")
        assert excinfo.value.plugin_status == 404
        assert await listdir(tmp_path) == []

    async def test_files_unsupported_on_the_platform(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.plugin.failures["files/list"] = (788, "Files are not supported on PrusaLink")
        with pytest.raises(oe_async.UnsupportedOnPlatformError, match="PrusaLink"):
            await printer.plugin.list_files()


def test_plugin_api_is_created_once_and_cheaply(
    oe: oe_async.OctoEverywhere, sim: Simulator
) -> None:
    printer = oe.printer(sim.app_connection())
    assert printer.plugin is printer.plugin
    assert "PluginAPI" in repr(printer.plugin)
