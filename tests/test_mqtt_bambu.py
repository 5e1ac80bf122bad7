"""Bambu Lab helpers: topics, commands, the merged typed report; against the simulator."""

from __future__ import annotations

import asyncio

import pytest

from oe_async import (
    BambuPrinter,
    BambuReport,
    BambuState,
    InvalidArgumentError,
    PrinterConnection,
    SubscriptionState,
    UnexpectedResponseError,
    UnsupportedOnPlatformError,
)
from oe_async.bambu import print_command, pushall_command, report_topic, request_topic
from oe_async.testing import Simulator
from oe_async.testing.fake_mqtt import FakeBambuPrinter, bambu_printer

from . import test_mqtt
from .test_mqtt import wait_until

fake = test_mqtt.fake  # the fake Bambu Lab printer fixture, shared


def test_topics_and_commands() -> None:
    assert report_topic("01S00C1") == "device/01S00C1/report"
    assert request_topic("01S00C1") == "device/01S00C1/request"
    assert pushall_command("7") == {"pushing": {"sequence_id": "7", "command": "pushall"}}
    assert print_command("pause") == {"print": {"sequence_id": "0", "command": "pause"}}
    with pytest.raises(InvalidArgumentError, match="'pause', 'resume' or 'stop'"):
        print_command("explode")  # type: ignore[arg-type]
    for serial in ("", " 01S", "a/b", "a+", "a#", "a\x00"):
        with pytest.raises(InvalidArgumentError, match="serial"):
            report_topic(serial)


def test_partial_reports_merge_into_a_typed_report() -> None:
    state = BambuState()
    assert state.report is None
    full = {
        "print": {
            "gcode_state": "RUNNING",
            "mc_percent": 42,
            "nozzle_temper": 219.8,
            "bed_temper": "60.5",  # some firmware sends numbers as text
            "layer_num": 3.0,
            "print_error": True,  # a wrong type is None in the typed view, kept in raw
            "ams": {"tray_now": "1", "ams": [{"id": "0"}]},
        }
    }
    report = state.update(full)
    assert report is not None
    assert (report.gcode_state, report.mc_percent, report.nozzle_temper) == ("RUNNING", 42, 219.8)
    assert report.bed_temper == 60.5
    assert report.layer_num == 3
    assert report.print_error is None
    assert report.raw["print_error"] is True
    assert report.printing
    assert not report.paused
    update = state.update({"print": {"gcode_state": "PAUSE", "ams": {"tray_now": "2"}}})
    assert update is not None
    assert update.paused
    assert update.mc_percent == 42  # kept from the full report
    assert update.raw["ams"] == {"tray_now": "2", "ams": [{"id": "0"}]}  # objects merge
    assert state.update({"info": {"command": "get_version"}}) is None
    assert state.report is update
    with pytest.raises(UnexpectedResponseError, match="not a JSON object"):
        state.update([1])
    with pytest.raises(UnexpectedResponseError, match="'print' is not an object"):
        state.update({"print": 3})
    state.reset()
    assert state.report is None
    assert BambuReport.from_print({"nozzle_temper": float("nan")}).nozzle_temper is None


async def test_a_session_reads_reports_and_sends_commands(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    bambu = BambuPrinter(printer.mqtt, fake.serial)
    assert fake.serial not in repr(bambu)
    assert bambu.report_topic == fake.report_topic
    async with bambu.connect() as session:
        reports = session.reports()
        async with asyncio.timeout(20):
            first = await anext(reports)
        assert (first.gcode_state, first.mc_percent, first.subtask_name) == (
            "RUNNING",
            42,
            "benchy",
        )
        assert first.bed_target_temper == 60.0
        await session.pause(qos=1)
        async with asyncio.timeout(20):
            while (report := await anext(reports)).gcode_state != "PAUSE":
                pass
        assert report.mc_percent == 42
        assert session.report is report
        await session.resume()
        await session.stop()
        await session.command({"system": {"command": "ledctrl", "led_node": "chamber_light"}})
        await wait_until(lambda: len(fake.requests) == 5, "five commands")
    commands = [next(iter(r.values()))["command"] for r in fake.requests]
    assert commands == ["pushall", "pause", "resume", "stop", "ledctrl"]
    sequence_ids = [next(iter(r.values()))["sequence_id"] for r in fake.requests]
    assert len(set(sequence_ids)) == 5
    assert all(int(s) < 1_000_000_000 for s in sequence_ids)  # never the plugin's own ids
    assert fake.report["gcode_state"] == "FAILED"


async def test_a_watch_follows_the_printer_across_reconnects(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    reports: list[BambuReport] = []
    watch = BambuPrinter(printer.mqtt, fake.serial).watch(reports.append)
    async with watch:
        await watch.wait_connected(20)
        await wait_until(lambda: len(reports) == 1, "the full report")
        await fake.update(mc_percent=50)
        await wait_until(lambda: len(reports) == 2, "the partial report")
        assert reports[-1].gcode_state == "RUNNING"
        assert reports[-1].mc_percent == 50
        assert watch.report is reports[-1]
        await watch.pause(qos=1)
        await wait_until(lambda: watch.report is not None and watch.report.paused, "paused")
        await fake.close_sessions()
        await wait_until(lambda: watch.subscription.connects == 2, "a reconnect")
        await wait_until(
            lambda: sum("pushing" in r for r in fake.requests) == 2, "a pushall per connect"
        )
        assert watch.state is SubscriptionState.CONNECTED
    assert watch.state is SubscriptionState.STOPPED


async def test_a_report_that_is_not_json_stops_the_watch(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    watch = BambuPrinter(printer.mqtt, fake.serial).watch(lambda report: None)
    await watch.wait_connected(20)
    await fake.publish(fake.report_topic, b"not json")
    with pytest.raises(UnexpectedResponseError):
        await asyncio.wait_for(watch.wait(), 20)


async def test_bad_commands_send_nothing(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    with pytest.raises(InvalidArgumentError):
        BambuPrinter(printer.mqtt, "a/b")
    with pytest.raises(InvalidArgumentError, match="callable"):
        BambuPrinter(printer.mqtt, fake.serial).watch("nope")  # type: ignore[arg-type]
    async with BambuPrinter(printer.mqtt, fake.serial).connect() as session:
        with pytest.raises(InvalidArgumentError, match="one object"):
            await session.command({"a": {}, "b": {}})
        with pytest.raises(InvalidArgumentError, match="inner value"):
            await session.command({"print": "pause"})
        with pytest.raises(InvalidArgumentError):
            await session.print_command("explode")  # type: ignore[arg-type]
    assert [next(iter(r)) for r in fake.requests] == ["pushing"]


@pytest.mark.parametrize("platform", ["bambu", None])
async def test_discover_asks_the_plugin_for_the_serial(platform: str | None) -> None:
    """The serial comes from get-connection-info: the app needs no platform knowledge."""
    async with Simulator(platform=platform) as sim, sim.client() as oe:  # type: ignore[arg-type]
        printer = oe.printer(sim.app_connection())
        bambu = await BambuPrinter.discover(printer.mqtt, printer.plugin)
        fake = bambu_printer(sim)
        assert bambu.report_topic == fake.report_topic
        assert fake.serial not in repr(bambu)
        async with bambu.connect() as session:
            async with asyncio.timeout(20):
                report = await anext(session.reports())
        assert report.gcode_state == "RUNNING"


async def test_discover_on_a_printer_without_a_serial_is_unsupported() -> None:
    async with Simulator(platform="prusalink") as sim, sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        with pytest.raises(UnsupportedOnPlatformError, match="no serial number"):
            await BambuPrinter.discover(printer.mqtt, printer.plugin)
        assert not bambu_printer(sim).connects  # nothing was opened
