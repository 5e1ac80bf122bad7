"""Body-less answers (204, 304, HEAD, ``Content-Length: 0``), many in one process.

aiohttp gives every body-less answer one process-wide empty stream reader whose
``readchunk()`` reports the end of the body only once per process (aiohttp issue 7616).
A read loop that waits for that end marker spun on it until the chunk-flood guard fired,
so every JSON call after the first body-less answer failed. Each test below makes several
such answers, so it fails on that bug whatever ran before it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from oe_async import PrinterConnection, UnexpectedResponseError
from oe_async.testing import Simulator

REPEAT = 5


async def test_octoprint_204_control_endpoints_through_post_json(
    printer: PrinterConnection, sim: Simulator
) -> None:
    for _ in range(REPEAT):
        assert await printer.post_json("/api/printer/command", {"command": "M117 hi"}) is None
        assert await printer.post_json("/api/printer/tool", {"command": "target"}) is None
        assert await printer.post_json("/api/printer/bed", {"command": "target"}) is None
        assert await printer.post_json("/api/connection", {"command": "connect"}) is None
        assert await printer.post_json("/api/job", {"command": "pause"}) is None
    # ... and the JSON calls after them still decode bodies.
    assert (await printer.get_json("/api/version"))["api"] == "0.1"
    assert len(sim.printer_commands) == 4 * REPEAT


async def test_octoprint_select_answers_204(printer: PrinterConnection, sim: Simulator) -> None:
    sim.files.add("part.gcode", b"G28\n")
    for _ in range(REPEAT):
        answer = await printer.post_json("/api/files/local/part.gcode", {"command": "select"})
        assert answer is None


@pytest.mark.parametrize("status", [200, 204, 304])
async def test_empty_answers_through_get_json(
    printer: PrinterConnection, sim: Simulator, status: int
) -> None:
    # 200 with Content-Length: 0, 204 and 304: all body-less.
    sim.fail(status, path="/api/empty", times=REPEAT)
    for _ in range(REPEAT):
        assert await printer.get_json("/api/empty") is None
    assert (await printer.get_json("/api/version"))["api"] == "0.1"


async def test_head_requests(printer: PrinterConnection) -> None:
    for _ in range(REPEAT):
        async with printer.request("HEAD", "/api/version") as resp:
            assert resp.status == 200
            assert await resp.read() == b""
    assert (await printer.get_json("/api/version"))["api"] == "0.1"


async def test_app_api_204(printer: PrinterConnection, sim: Simulator) -> None:
    sim.fail(204, path="/api/appconnection/DeleteNotificationWebhook", origin="app_api")
    for _ in range(REPEAT):
        await printer.app_api.delete_notification_webhook()
    assert (await printer.app_api.info()).printer_name == sim.state.printer_name


async def test_plugin_api_body_less_answer_is_an_unexpected_response(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(204, path="/octoeverywhere-command-api/status")
    for _ in range(REPEAT):
        with pytest.raises(UnexpectedResponseError, match="did not answer an envelope"):
            await printer.plugin.status()


async def test_downloads_of_empty_files(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    sim.files.add("empty.gcode", b"")
    for number in range(REPEAT):
        async with printer.files.download("/downloads/files/local/empty.gcode") as chunks:
            assert [chunk async for chunk in chunks] == []
        dest = await printer.files.download_to(
            "/downloads/files/local/empty.gcode", tmp_path / f"e{number}"
        )
        assert (await asyncio.to_thread(dest.stat)).st_size == 0
    # A body-less answer that still says "chunked": the chunk-reading path.
    sim.fail(
        204, path="/downloads/files/local/gone.gcode", headers={"Transfer-Encoding": "chunked"}
    )
    for _ in range(REPEAT):
        async with printer.files.download("/downloads/files/local/gone.gcode") as chunks:
            assert [chunk async for chunk in chunks] == []
