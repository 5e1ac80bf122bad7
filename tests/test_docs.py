"""The guides in docs/ hold only code that works with the current API.

Every Python block of every ``docs/*.md`` compiles; the recipes of the OctoPrint, Moonraker
and webcam guides are executed (all blocks of a guide in one namespace, as a reader pastes
them) and run against the simulator. The README links every guide.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from oe_async import OctoEverywhere, PrinterConnection, ReconnectPolicy
from oe_async.testing import Simulator

from .helpers import polls

ROOT = Path(__file__).resolve().parent.parent
# Read once at import time (not on the event loop).
GUIDES = {
    path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "docs").glob("*.md"))
}
README_TEXT = (ROOT / "README.md").read_text(encoding="utf-8")
FIXTURES = ROOT / "tests" / "fixtures" / "moonraker"
SERVER_INFO = (FIXTURES / "server_info.json").read_bytes()
KLIPPY_503 = (FIXTURES / "error_klippy_not_connected_503.json").read_bytes()
JSON = {"Content-Type": "application/json"}
OK = json.dumps({"result": "ok"}).encode()
JPEG = b"\xff\xd8"


def _blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDES[name], flags=re.S)


def _recipes(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for block in _blocks(name):
        exec(compile(block, f"docs/{name}", "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace


def test_every_python_block_in_docs_compiles() -> None:
    assert {"octoprint.md", "moonraker.md", "webcams.md"} <= set(GUIDES)
    for name in GUIDES:
        for block in _blocks(name):
            compile(block, f"docs/{name}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_readme_links_every_guide() -> None:
    for name in GUIDES:
        assert f"(docs/{name})" in README_TEXT, name


def test_guide_links_point_at_files_that_exist() -> None:
    for name, text in GUIDES.items():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (ROOT / "docs" / target).resolve().exists(), (name, target)


# ---------------------------------------------------------------------- OctoPrint


async def test_octoprint_api_key(sim: Simulator, oe: OctoEverywhere) -> None:
    recipes = _recipes("octoprint.md")
    sim.state.octoprint_api_key = "k" * 32
    without = attrs.evolve(sim.app_connection(), octoprint_api_key=None)
    printer = recipes["octoprint"](oe, without, "k" * 32)
    assert (await printer.get_json("/api/version"))["api"] == "0.1"
    with_key = attrs.evolve(sim.app_connection(), octoprint_api_key="k" * 32)
    assert (await recipes["octoprint"](oe, with_key, "wrong").get_json("/api/version"))["api"]


async def test_octoprint_commands_answer_204(printer: PrinterConnection, sim: Simulator) -> None:
    recipes = _recipes("octoprint.md")
    await recipes["heat"](printer, 210, 60)
    await recipes["send_gcode"](printer, "G28", "M105")
    assert [path for path, _ in sim.printer_commands] == [
        "/api/printer/tool",
        "/api/printer/bed",
        "/api/printer/command",
    ]
    assert sim.printer_commands[-1][1] == {"commands": ["G28", "M105"]}
    temps = await recipes["temperatures"](printer)
    assert set(temps) == {"tool0", "bed"}


async def test_octoprint_upload_and_print(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = _recipes("octoprint.md")
    gcode = tmp_path / "benchy.gcode"
    await asyncio.to_thread(gcode.write_bytes, b"G28\n" * 1000)
    assert await recipes["upload_and_print"](printer, gcode) == "benchy.gcode"
    assert "benchy.gcode" in sim.files
    assert "4000/4000 bytes" in capsys.readouterr().out
    await recipes["print_existing"](printer, "benchy.gcode")
    assert sim.printer_commands[-1] == (
        "/api/files/local/benchy.gcode",
        {"command": "select", "print": True},
    )


async def test_octoprint_streamed_upload_sends_content_length(
    printer: PrinterConnection, sim: Simulator
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"G1 X1\n" * 100

    answer = await _recipes("octoprint.md")["upload_generated"](
        printer, "gen.gcode", chunks(), 2400
    )
    assert answer.status == 201
    upload = sim.requests_to("relay", "/api/files/local")[-1]
    assert "Content-Length" in upload.headers  # what OctoPrint needs (411 otherwise)
    assert "chunked" not in upload.headers.get("Transfer-Encoding", "")
    assert sim.files.get("gen.gcode") is not None


async def test_octoprint_download_through_refs(printer: PrinterConnection, tmp_path: Path) -> None:
    gcode = tmp_path / "part.gcode"
    data = b"G28\n" + b"G1 X10\n" * 5000
    await asyncio.to_thread(gcode.write_bytes, data)
    dest = await _recipes("octoprint.md")["fetch_back"](printer, gcode, tmp_path / "back.gcode")
    assert await asyncio.to_thread(Path(dest).read_bytes) == data


async def test_octoprint_push_socket_logs_in(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.state.ws_interval = 0.05
    login = json.dumps({"name": "oe", "session": "s3ss10n", "active": True}).encode()
    sim.fail(200, origin="relay", path="/api/login", method="POST", headers=JSON, body=login)
    sub = _recipes("octoprint.md")["watch"](printer)
    try:
        await sub.wait_connected(timeout=10)
        async for _ in polls():
            if "state: " in capsys.readouterr().out:
                break
        else:
            pytest.fail("no current state arrived")
    finally:
        await sub.close()
    assert ("/sockjs/websocket", {"auth": "oe:s3ss10n"}) in sim.ws_received
    login_request = sim.requests_to("relay", "/api/login")[0]
    assert login_request.method == "POST"


async def test_octoprint_cancel_reports_409(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    cancel = _recipes("octoprint.md")["cancel"]
    sim.state.active_print = False
    assert await cancel(printer) is False
    assert capsys.readouterr().out.strip() == "Printer is not printing"
    sim.state.active_print = True
    assert await cancel(printer) is True
    assert sim.state.active_print is False


# ---------------------------------------------------------------------- Moonraker


async def test_moonraker_klipper_state(printer: PrinterConnection, sim: Simulator) -> None:
    recipes = _recipes("moonraker.md")
    sim.fail(200, origin="relay", path="/server/info", headers=JSON, body=SERVER_INFO)
    expected = json.loads(SERVER_INFO)["result"]["klippy_state"]
    assert await recipes["klipper_state"](printer) == expected
    sim.fail(503, origin="relay", path="/printer/firmware_restart", headers=JSON, body=KLIPPY_503)
    assert await recipes["restart_firmware"](printer) == "Klippy Host not connected"


async def test_moonraker_upload_and_print(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    gcode = tmp_path / "a b ü#1.gcode"
    await asyncio.to_thread(gcode.write_bytes, b"G28\n")
    path = await _recipes("moonraker.md")["upload_and_print"](printer, gcode)
    assert path == "jobs/a b ü#1.gcode"
    assert "gcodes/jobs/a b ü#1.gcode" in sim.files


async def test_moonraker_print_control(printer: PrinterConnection, sim: Simulator) -> None:
    recipes = _recipes("moonraker.md")
    for path in ("/printer/print/start", "/printer/print/pause", "/printer/gcode/script"):
        sim.fail(200, origin="relay", path=path, headers=JSON, body=OK)
    await recipes["print_existing"](printer, "jobs/part.gcode")
    await recipes["pause"](printer)
    await recipes["run_gcode"](printer, "G28\nM105")
    start = sim.requests_to("relay", "/printer/print/start")[-1]
    assert (start.method, start.query) == ("POST", "filename=jobs/part.gcode")
    script = sim.requests_to("relay", "/printer/gcode/script")[-1]
    assert "script=G28" in script.query
    assert sim.requests_to("relay", "/printer/print/pause")[-1].method == "POST"


async def test_moonraker_download_all(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    files = {"a b ü#1.gcode": b"G28\n" * 10, "jobs/part.gcode": b"G1 X1\n" * 3000}
    for path, data in files.items():
        sim.files.add(f"gcodes/{path}", data)
    listing = {"result": [{"path": path, "size": len(data)} for path, data in files.items()]}
    sim.fail(
        200,
        origin="relay",
        path="/server/files/list",
        headers=JSON,
        body=json.dumps(listing).encode(),
    )
    saved = await _recipes("moonraker.md")["download_all"](printer, tmp_path)
    assert [Path(p).name for p in saved] == ["a b ü#1.gcode", "part.gcode"]
    for path, data in files.items():
        assert await asyncio.to_thread((tmp_path / Path(path).name).read_bytes) == data


async def test_moonraker_webcam_from_its_list(printer: PrinterConnection, sim: Simulator) -> None:
    cams = {
        "result": {
            "webcams": [
                {
                    "name": "bed",
                    "stream_url": "http://192.168.1.20/webcam/?action=stream",
                    "snapshot_url": "/webcam/?action=snapshot",
                }
            ]
        }
    }
    sim.fail(
        200,
        origin="relay",
        path="/server/webcams/list",
        headers=JSON,
        body=json.dumps(cams).encode(),
    )
    frame = await _recipes("moonraker.md")["first_frame"](printer)
    assert frame is not None
    assert frame.data.startswith(JPEG)
    assert sim.requests_to("relay", "*/webcam/*")[-1].query == "action=stream"


async def test_moonraker_identify_then_subscribe(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.state.ws_interval = 0.05
    sub = _recipes("moonraker.md")["watch"](printer)
    try:
        seen = ""
        async for _ in polls():
            seen += capsys.readouterr().out
            if "initial:" in seen and "changed:" in seen:
                break
        else:
            pytest.fail(f"no initial state and update arrived: {seen!r}")
    finally:
        await sub.close()
    sent = [m.get("method") for _, m in sim.ws_received if isinstance(m, dict)]
    assert sent[:2] == ["server.connection.identify", "printer.objects.subscribe"]


async def test_moonraker_one_rpc(printer: PrinterConnection) -> None:
    rpc = _recipes("moonraker.md")["rpc"]
    assert (await rpc(printer, "server.info"))["klippy_state"] == "ready"
    with pytest.raises(RuntimeError, match="Method not found"):
        await rpc(printer, "no.such.method")


# ---------------------------------------------------------------------- webcams


async def test_webcams_default_camera(printer: PrinterConnection, sim: Simulator) -> None:
    index = await _recipes("webcams.md")["default_camera"](printer)
    assert index == sim.state.webcam.default_index


async def test_webcams_save_frames(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    images = await _recipes("webcams.md")["save_frames"](printer, 3)
    assert len(images) == 3
    assert all(image.startswith(JPEG) for image in images)


async def test_webcams_status_line(printer: PrinterConnection, sim: Simulator) -> None:
    status_line = _recipes("webcams.md")["status_line"]
    sim.fail(609, origin="relay", path="*/webcam/*", times=1)
    frames = printer.webcam.frames(reconnect=ReconnectPolicy(webcam_limit_delay=5.0))
    assert status_line(frames) == "Connecting..."

    async def watch() -> None:
        async for _ in frames:
            pass

    task = asyncio.create_task(watch())
    try:
        async for _ in polls():
            if frames.state == "waiting":
                break
        assert frames.state == "waiting"
        assert status_line(frames).startswith("Webcam paused by OctoEverywhere, back in ")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await frames.aclose()
    assert status_line(frames) == "Stopped"


async def test_webcams_viewers_share_one_stream(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    dropped = await _recipes("webcams.md")["viewers"](printer, 4, 5)
    assert len(dropped) == 4
    assert sim.webcam_streams == 1


async def test_webcams_snapshot_or_none(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_or_none = _recipes("webcams.md")["snapshot_or_none"]
    image = await snapshot_or_none(printer)
    assert image is not None
    assert image.startswith(JPEG)
    sim.fail(605, origin="relay", path="*/webcam/*", times=1)
    assert await snapshot_or_none(printer) is None
    assert capsys.readouterr().out.strip()
