"""docs/bambu.md's recipes and examples/bambu_status.py run against the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from oe_async import OctoEverywhere, PrinterConnection, SubscriptionState
from oe_async.testing import Simulator
from oe_async.testing.fake_mqtt import FakeBambuPrinter

from . import doc_examples, test_mqtt
from .helpers import load_example

fake = test_mqtt.fake  # the fake Bambu Lab printer fixture, shared
ROOT = Path(__file__).resolve().parent.parent
PAGE = "docs/bambu.md"
BAMBU_STATUS = load_example("bambu_status")


@pytest.fixture
def recipes() -> dict[str, Any]:
    return doc_examples.recipes(PAGE)


async def test_at_a_glance(
    printer: PrinterConnection, fake: FakeBambuPrinter, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's first example: plain MQTT, then the typed session, then a watch."""
    fake.report["print_error"] = 0x0300_8001  # the session's loop pauses and ends
    reports: list[Any] = []
    namespace = {
        "printer": printer,
        "serial": fake.serial,
        "on_report": reports.append,
        "on_state": lambda event: None,
    }
    text = doc_examples.block(PAGE, "# serial from the plugin")
    await asyncio.wait_for(doc_examples.run(PAGE, text, namespace), 30)
    try:
        async with asyncio.timeout(20):
            while not reports:
                await asyncio.sleep(0.01)
    finally:
        await namespace["watch"].close()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device/")  # the first message: its topic, then the report
    assert out[1].startswith("RUNNING")
    assert any(request.get("print", {}).get("command") == "pause" for request in fake.requests)


async def test_follow_and_pause(
    recipes: dict[str, Any], printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    follower = asyncio.ensure_future(recipes["follow"](printer, fake.serial))
    async with asyncio.timeout(20):
        while not any("pushing" in request for request in fake.requests):
            await asyncio.sleep(0.01)
    await fake.update(gcode_state="FINISH")
    await asyncio.wait_for(follower, 20)
    fake.report["print_error"] = 0x0300_8001
    await asyncio.wait_for(recipes["pause_if_failing"](printer, fake.serial), 20)
    assert fake.requests[-1]["print"]["command"] == "pause"
    report = await asyncio.wait_for(recipes["raw"](printer, fake.serial), 20)
    assert report["print"]["command"] == "push_status"


async def test_discover(
    recipes: dict[str, Any], printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    bambu = await recipes["discover"](printer)
    assert bambu.report_topic == fake.report_topic


async def test_watch_for_home_assistant(
    recipes: dict[str, Any], printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    entity: dict[str, Any] = {}
    watch = recipes["watch_printer"](printer, fake.serial, entity)
    try:
        async with asyncio.timeout(20):
            while entity.get("state") != "RUNNING":
                await asyncio.sleep(0.01)
        assert entity["available"] is True
        assert entity["progress"] == 42
        await fake.set_broker_online(False)
        async with asyncio.timeout(20):
            while "problem" not in entity:
                await asyncio.sleep(0.01)
        assert entity["available"] is False
    finally:
        await watch.close()


async def test_the_simulator_recipe(
    recipes: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.wait_for(recipes["simulate"](), 30)
    assert capsys.readouterr().out.split() == ["RUNNING", "99"]


async def test_the_example_prints_pushed_reports(
    oe: OctoEverywhere, sim: Simulator, fake: FakeBambuPrinter, capsys: pytest.CaptureFixture[str]
) -> None:
    async def advance() -> None:
        async with asyncio.timeout(20):  # the full report went out (answering the pushall)
            while not any("pushing" in request for request in fake.requests):
                await asyncio.sleep(0.01)
        await fake.update(mc_percent=43, mc_remaining_time=37)

    pusher = asyncio.ensure_future(advance())
    lines = await asyncio.wait_for(
        BAMBU_STATUS.show_status(oe, sim.app_connection(), fake.serial, reports=2), 30
    )
    await pusher
    assert lines[0].startswith("RUNNING  42%  38 min left  layer 62/145  nozzle 220/220°C")
    assert lines[1].startswith("RUNNING  43%  37 min left")
    assert capsys.readouterr().out.splitlines() == lines
    assert fake.serial not in "".join(lines)
    assert SubscriptionState.STOPPED.value == "stopped"
