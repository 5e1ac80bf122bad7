"""The README and the guides in docs/ hold only code that works with the current API.

Every Python block of README.md and docs/*.md compiles, and a test runs every one against
the simulator: all of a guide's recipes in one namespace, as a reader pastes them; a snippet
with the names a reader has (``printer``, ``oe``...). ``RUN_BY`` says which test runs which
block (by a piece of its text) and ``NOT_RUN`` the blocks that cannot run here, and why; a
test holds every block to one of them. The README links every guide, and every link of a
guide leads to a file (``make docs`` checks every link of the built site, anchors included).
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
from aiohttp import web
from yarl import URL

import oe_async
from oe_async import (
    ConnectionBudget,
    OctoEverywhere,
    PrinterConnection,
    ReconnectPolicy,
    SubscriptionState,
    WebhookReceiver,
)
from oe_async.testing import Simulator

from .doc_examples import PAGES, ROOT, block, blocks, recipes, run
from .helpers import RecordingServer, eventually, polls

FIXTURES = ROOT / "tests" / "fixtures" / "moonraker"
SERVER_INFO = (FIXTURES / "server_info.json").read_bytes()
KLIPPY_503 = (FIXTURES / "error_klippy_not_connected_503.json").read_bytes()
JSON = {"Content-Type": "application/json"}
OK = json.dumps({"result": "ok"}).encode()
JPEG = b"\xff\xd8"
#: Every public name, as a reader who wrote ``from oe_async import *`` has them.
PUBLIC = {name: getattr(oe_async, name) for name in oe_async.__all__}
GUIDES = [page for page in PAGES if page.startswith("docs/")]

#: page -> a piece of the text of each of its blocks, run by a test here or in the file named.
RUN_BY = {
    "README.md": ["async def report", "portal_url("],  # report: tests/test_readme.py
    "docs/app-connections.md": ["portal_url("],
    "docs/requests-and-errors.md": ["/printer/gcode/script"],
    "docs/files.md": ["printer.files.upload("],
    "docs/webcams.md": [
        "viewer_left()",
        "def default_camera(",
        "def save_frames(",
        "def status_line(",
        "def viewers(",
        "def snapshot_or_none(",
    ],
    "docs/websockets.md": ["printer.websocket.subscribe("],
    "docs/lan-and-relay.md": ["lan_url="],
    "docs/scale.md": ["ConnectionBudget("],
    "docs/gadget-and-webhooks.md": ["printer.gadget.status()"],
    "docs/testing.md": ["async def test_my_app("],
    "docs/plugin.md": ["send_command("],  # tests/test_plugin_platforms.py
    "docs/octoprint.md": [
        "def octoprint(",
        "def heat(",
        "def upload_and_print(",
        "def upload_generated(",
        "def fetch_back(",
        "def watch(",
        "def cancel(",
    ],
    "docs/moonraker.md": [
        "def klipper_state(",
        "def upload_and_print(",
        "def print_existing(",
        "def download_all(",
        "def first_frame(",
        "def watch(",
        "def rpc(",
    ],
    # tests/test_mqtt_docs.py:
    "docs/bambu.md": [
        "# serial from the plugin",
        "def discover(",
        "def follow(",
        "def pause_if_failing(",
        "def watch_printer(",
        "def raw(",
        "def simulate(",
    ],
}
NOT_RUN = {
    ("docs/homeassistant.md", "async_get_clientsession(hass)"): (
        "Home Assistant's own objects (hass, entry): `make ha` runs the example integration"
        " these lines come from inside Home Assistant"
    ),
}


def test_every_python_block_compiles() -> None:
    assert {"docs/octoprint.md", "docs/moonraker.md", "docs/webcams.md"} <= set(PAGES)
    for page in PAGES:
        for text in blocks(page):
            compile(text, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_python_block_is_run_by_a_test() -> None:
    for page in PAGES:
        markers = RUN_BY.get(page, []) + [m for p, m in NOT_RUN if p == page]
        for text in blocks(page):
            found = [marker for marker in markers if marker in text]
            assert len(found) == 1, f"{page}: no test runs the block {text[:60]!r}, or two"
        for marker in markers:
            assert any(marker in text for text in blocks(page)), f"{page}: {marker!r} is gone"


def test_the_readme_links_every_guide() -> None:
    for page in GUIDES:
        assert f"]({page})" in PAGES["README.md"], page


def test_guide_links_point_at_files_that_exist() -> None:
    for page in GUIDES:
        for target in re.findall(r"\]\(([^)\s]+)\)", PAGES[page]):
            if not target.startswith(("http://", "https://", "#")):
                assert (ROOT / "docs" / target.partition("#")[0]).resolve().exists(), (page, target)


# ---------------------------------------------------------------------- snippets


@pytest.mark.parametrize("page", ["README.md", "docs/app-connections.md"])
async def test_the_portal_flow(page: str, sim: Simulator) -> None:
    """Up to the redirect; then the completion URL the portal would send back; then the rest."""
    text = block(page, "portal_url(")
    before, marker, after = text.partition("# ... send the user")
    namespace = await run(page, before, {})
    start = URL(str(namespace["start"]))
    assert start.query["appid"] == "my-app-id"
    fields = sim.completion_url(url="https://app-sim.octoeverywhere.com").query
    completion = URL("https://myapp.example/oe/done").with_query(
        {**fields, "state": namespace["state"]}
    )
    stored: list[dict[str, Any]] = []
    namespace.update(completion_url=str(completion), store_securely=stored.append)
    await run(page, marker + after, namespace)
    assert stored[0]["url"] == "https://app-sim.octoeverywhere.com"
    wrong = URL("https://myapp.example/oe/done").with_query({**fields, "state": "another"})
    with pytest.raises(oe_async.PortalError):
        await run(page, marker + after, {**namespace, "completion_url": str(wrong)})


async def test_requests_and_errors_printer_message(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    page = "docs/requests-and-errors.md"
    sim.fail(503, origin="relay", path="/printer/gcode/script", headers=JSON, body=KLIPPY_503)
    await run(page, block(page, "/printer/gcode/script"), {"printer": printer, **PUBLIC})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Klippy Host not connected"
    assert lines[1].startswith("The printer answered HTTP 503")
    assert lines[1].endswith(": Klippy Host not connected")


async def test_files(
    printer: PrinterConnection,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = "docs/files.md"
    gcode = b"G28\n" * 1000
    await asyncio.to_thread((tmp_path / "benchy.gcode").write_bytes, gcode)
    await asyncio.to_thread(monkeypatch.chdir, tmp_path)  # "benchy.gcode" is relative
    namespace = {"printer": printer, "data": b"G1 X1\n"}
    await run(page, block(page, "printer.files.upload("), namespace)
    out = capsys.readouterr().out
    assert "4000/4000" in out
    assert namespace["answer"].status == 201
    assert sim.files.get("benchy.gcode") is not None
    assert sim.uploads[-1].path == "gcode/a.gcode"
    assert await asyncio.to_thread((tmp_path / "benchy.gcode").read_bytes) == gcode


async def test_websockets(printer: PrinterConnection, sim: Simulator) -> None:
    page = "docs/websockets.md"
    sim.state.ws_interval = 0.05
    updates: list[Any] = []
    closing: list[asyncio.Task[int]] = []

    def handle_update(update: Any) -> None:  # the push socket: close it after two updates
        updates.append(update)
        if len(updates) == 2:
            closing.append(asyncio.ensure_future(sim.close_websockets(1000)))

    namespace = {
        "printer": printer,
        "handle_update": handle_update,
        "handle": lambda message: None,
        "set_available": lambda available: None,
        "SubscriptionState": SubscriptionState,
    }
    await run(page, block(page, "printer.websocket.subscribe("), namespace)
    await asyncio.gather(*closing)
    assert namespace["info"]["result"]["klippy_state"] == "ready"
    assert len(updates) == 2
    await asyncio.wait_for(namespace["sub"].wait(), 10)  # closed: nothing left running


async def test_lan_or_relay(
    oe: OctoEverywhere, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example with the simulator's LAN address for the printer's (loopback only)."""
    page = "docs/lan-and-relay.md"
    text = block(page, "lan_url=")
    assert '"http://192.168.1.20"' in text
    lan = await sim.start_lan()
    text = text.replace('"http://192.168.1.20"', f'"{str(lan).rstrip("/")}"')
    await run(page, text, {"oe": oe, "connection": sim.app_connection()})
    assert capsys.readouterr().out.strip() == "Route.LAN"


async def test_the_connection_budget() -> None:
    page = "docs/scale.md"
    namespace = await run(page, block(page, "ConnectionBudget("), {})
    try:
        assert namespace["oe"].connections == ConnectionBudget(requests=100, streams=500)
    finally:
        await namespace["oe"].close()


async def test_gadget_and_webhooks(
    printer: PrinterConnection,
    sim: Simulator,
    foreign: RecordingServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The example, its webhook on a loopback endpoint (the simulator calls nothing else)."""
    page = "docs/gadget-and-webhooks.md"
    text = block(page, "printer.gadget.status()")
    assert '"https://app.example/oe?tenant=42"' in text
    endpoint = foreign.url.with_path("/oe").with_query(tenant="42")
    text = text.replace('"https://app.example/oe?tenant=42"', f'"{endpoint}"')
    namespace = {
        "printer": printer,
        "on_status": lambda status: None,
        "panel_open": True,
        "on_event": lambda event: None,
        "stored_secret": sim.state.webhook.secret_key,
        "app": web.Application(),
        **PUBLIC,
    }
    await run(page, text, namespace)
    try:
        assert capsys.readouterr().out.strip() == "200"  # what the endpoint answered
        assert [(seen.method, seen.path) for seen in foreign.seen] == [("POST", "/oe")]
        assert namespace["gadget"].status == sim.state.gadget.status
        assert isinstance(namespace["receiver"], WebhookReceiver)
    finally:
        await namespace["poller"].close()


async def test_testing_with_the_simulator() -> None:
    page = "docs/testing.md"
    namespace = await run(page, block(page, "async def test_my_app("), {})
    await namespace["test_my_app"]()


# ---------------------------------------------------------------------- OctoPrint


async def test_octoprint_api_key(sim: Simulator, oe: OctoEverywhere) -> None:
    octoprint = recipes("docs/octoprint.md")["octoprint"]
    sim.state.octoprint_api_key = "k" * 32
    without = attrs.evolve(sim.app_connection(), octoprint_api_key=None)
    printer = octoprint(oe, without, "k" * 32)
    assert (await printer.get_json("/api/version"))["api"] == "0.1"
    with_key = attrs.evolve(sim.app_connection(), octoprint_api_key="k" * 32)
    assert (await octoprint(oe, with_key, "wrong").get_json("/api/version"))["api"]


async def test_octoprint_commands_answer_204(printer: PrinterConnection, sim: Simulator) -> None:
    ns = recipes("docs/octoprint.md")
    await ns["heat"](printer, 210, 60)
    await ns["send_gcode"](printer, "G28", "M105")
    assert [path for path, _ in sim.printer_commands] == [
        "/api/printer/tool",
        "/api/printer/bed",
        "/api/printer/command",
    ]
    assert sim.printer_commands[-1][1] == {"commands": ["G28", "M105"]}
    temps = await ns["temperatures"](printer)
    assert set(temps) == {"tool0", "bed"}


async def test_octoprint_upload_and_print(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = recipes("docs/octoprint.md")
    gcode = tmp_path / "benchy.gcode"
    await asyncio.to_thread(gcode.write_bytes, b"G28\n" * 1000)
    assert await ns["upload_and_print"](printer, gcode) == "benchy.gcode"
    assert "benchy.gcode" in sim.files
    assert "4000/4000 bytes" in capsys.readouterr().out
    await ns["print_existing"](printer, "benchy.gcode")
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

    answer = await recipes("docs/octoprint.md")["upload_generated"](
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
    fetch_back = recipes("docs/octoprint.md")["fetch_back"]
    dest = await fetch_back(printer, gcode, tmp_path / "back.gcode")
    assert await asyncio.to_thread(Path(dest).read_bytes) == data


async def test_octoprint_push_socket_logs_in(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.state.ws_interval = 0.05
    login = json.dumps({"name": "oe", "session": "s3ss10n", "active": True}).encode()
    sim.fail(200, origin="relay", path="/api/login", method="POST", headers=JSON, body=login)
    sub = recipes("docs/octoprint.md")["watch"](printer)
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
    cancel = recipes("docs/octoprint.md")["cancel"]
    sim.state.active_print = False
    assert await cancel(printer) is False
    assert capsys.readouterr().out.strip() == "Printer is not printing"
    sim.state.active_print = True
    assert await cancel(printer) is True
    assert sim.state.active_print is False


# ---------------------------------------------------------------------- Moonraker


async def test_moonraker_klipper_state(printer: PrinterConnection, sim: Simulator) -> None:
    ns = recipes("docs/moonraker.md")
    sim.fail(200, origin="relay", path="/server/info", headers=JSON, body=SERVER_INFO)
    expected = json.loads(SERVER_INFO)["result"]["klippy_state"]
    assert await ns["klipper_state"](printer) == expected
    sim.fail(503, origin="relay", path="/printer/firmware_restart", headers=JSON, body=KLIPPY_503)
    assert await ns["restart_firmware"](printer) == "Klippy Host not connected"


async def test_moonraker_upload_and_print(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    gcode = tmp_path / "a b ü#1.gcode"
    await asyncio.to_thread(gcode.write_bytes, b"G28\n")
    path = await recipes("docs/moonraker.md")["upload_and_print"](printer, gcode)
    assert path == "jobs/a b ü#1.gcode"
    assert "gcodes/jobs/a b ü#1.gcode" in sim.files


async def test_moonraker_print_control(printer: PrinterConnection, sim: Simulator) -> None:
    ns = recipes("docs/moonraker.md")
    for path in ("/printer/print/start", "/printer/print/pause", "/printer/gcode/script"):
        sim.fail(200, origin="relay", path=path, headers=JSON, body=OK)
    await ns["print_existing"](printer, "jobs/part.gcode")
    await ns["pause"](printer)
    await ns["run_gcode"](printer, "G28\nM105")
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
    saved = await recipes("docs/moonraker.md")["download_all"](printer, tmp_path)
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
    frame = await recipes("docs/moonraker.md")["first_frame"](printer)
    assert frame is not None
    assert frame.data.startswith(JPEG)
    assert sim.requests_to("relay", "*/webcam/*")[-1].query == "action=stream"


async def test_moonraker_identify_then_subscribe(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.state.ws_interval = 0.05
    sub = recipes("docs/moonraker.md")["watch"](printer)
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
    rpc = recipes("docs/moonraker.md")["rpc"]
    assert (await rpc(printer, "server.info"))["klippy_state"] == "ready"
    with pytest.raises(RuntimeError, match="Method not found"):
        await rpc(printer, "no.such.method")


# ---------------------------------------------------------------------- webcams


async def test_webcams_at_a_glance(printer: PrinterConnection, sim: Simulator) -> None:
    page = "docs/webcams.md"
    sim.state.webcam.fps = 50
    shown: list[tuple[bytes, bool, bool, int]] = []
    namespace = {
        "printer": printer,
        "show": lambda *picture: shown.append(picture),
        "viewer_left": lambda: len(shown) % 3 == 0,  # each viewer watches three frames
    }
    await run(page, block(page, "viewer_left()"), namespace)
    assert len(shown) == 6
    assert all(data.startswith(JPEG) for data, *_ in shown)
    assert namespace["snap"].data.startswith(JPEG)
    assert namespace["own"].data.startswith(JPEG)
    assert namespace["first"].data.startswith(JPEG)
    assert namespace["cams"].webcams


async def test_webcams_default_camera(printer: PrinterConnection, sim: Simulator) -> None:
    index = await recipes("docs/webcams.md")["default_camera"](printer)
    assert index == sim.state.webcam.default_index


async def test_webcams_save_frames(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    images = await recipes("docs/webcams.md")["save_frames"](printer, 3)
    assert len(images) == 3
    assert all(image.startswith(JPEG) for image in images)


async def test_webcams_status_line(printer: PrinterConnection, sim: Simulator) -> None:
    status_line = recipes("docs/webcams.md")["status_line"]
    sim.fail(609, origin="relay", path="*/webcam/*", times=1)
    frames = printer.webcam.frames(reconnect=ReconnectPolicy(webcam_limit_delay=5.0))
    assert status_line(frames) == "Connecting..."

    async def watch() -> None:
        async for _ in frames:
            pass

    task = asyncio.create_task(watch())
    try:
        await eventually(lambda: frames.state == "waiting", "the stream waits out the 609")
        assert status_line(frames).startswith("Webcam paused by OctoEverywhere, back in ")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await frames.aclose()
    assert status_line(frames) == "Stopped"


async def test_webcams_viewers_share_one_stream(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    dropped = await recipes("docs/webcams.md")["viewers"](printer, 4, 5)
    assert len(dropped) == 4
    assert sim.webcam_streams == 1


async def test_webcams_snapshot_or_none(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_or_none = recipes("docs/webcams.md")["snapshot_or_none"]
    image = await snapshot_or_none(printer)
    assert image is not None
    assert image.startswith(JPEG)
    sim.fail(605, origin="relay", path="*/webcam/*", times=1)
    assert await snapshot_or_none(printer) is None
    assert capsys.readouterr().out.strip()
