"""Upload file and field names are sent as given: raw UTF-8, as browsers and curl send them.

The simulator reads names the way Moonraker and OctoPrint do (the quoted value as it is, no
percent-decoding), so a percent-encoded name would be stored percent-encoded, as Moonraker
stored ``a%20b%20%C3%BC%231.gcode`` before this was fixed.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from oe_async import OctoEverywhere, PrinterConnection
from oe_async.testing import Simulator
from oe_async.testing.fake_files import form_names
from oe_async.transfer import form_disposition

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "moonraker"
MOONRAKER_ANSWER = json.loads((FIXTURES / "upload_create_file_201.json").read_text("utf-8"))
NAME = "a b ü#1.gcode"


async def test_moonraker_stores_the_name_as_given(
    printer: PrinterConnection, sim: Simulator
) -> None:
    answer = await printer.files.upload(
        "/server/files/upload",
        b"G28\n",
        filename=NAME,
        form={"root": "gcodes", "path": "fixtures"},
    )
    assert answer.status == 201
    assert "gcodes/fixtures/a b ü#1.gcode" in sim.files
    assert "gcodes/fixtures/a%20b%20%C3%BC%231.gcode" not in sim.files
    # The same answer, key for key, as the real Moonraker gave a curl upload of that name.
    assert answer.data["item"]["path"] == MOONRAKER_ANSWER["item"]["path"] == f"fixtures/{NAME}"
    assert set(answer.data) == set(MOONRAKER_ANSWER)
    assert set(answer.data["item"]) == set(MOONRAKER_ANSWER["item"])


async def test_octoprint_stores_the_name_as_given(
    printer: PrinterConnection, sim: Simulator
) -> None:
    answer = await printer.files.upload("/api/files/local", b"G1\n", filename=NAME)
    assert answer.data["files"]["local"]["name"] == NAME
    assert NAME in sim.files


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ('say "hi".gcode', "say %22hi%22.gcode"),  # as a browser or curl sends it
        ("back\\slash.gcode", "back\\slash.gcode"),
        ("semi;colon=1.gcode", "semi;colon=1.gcode"),
        ("100%.gcode", "100%.gcode"),
        ("日本語 ファイル.gcode", "日本語 ファイル.gcode"),
    ],
)
async def test_awkward_names(
    printer: PrinterConnection, sim: Simulator, given: str, stored: str
) -> None:
    await printer.files.upload("/api/files/local", b"G1\n", filename=given)
    assert stored in sim.files, list(sim.files.files)


async def test_a_path_source_keeps_its_name(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    source = tmp_path / NAME
    await _write(source, b"G28\n")
    await printer.files.upload("/api/files/local", source)
    assert NAME in sim.files


async def _write(path: Path, data: bytes) -> None:
    await asyncio.to_thread(path.write_bytes, data)


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[URL]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield URL(f"http://127.0.0.1:{sock.getsockname()[1]}/")
    finally:
        await runner.cleanup()


def test_disposition_is_what_browsers_send() -> None:
    assert form_disposition("file", NAME) == f'form-data; name="file"; filename="{NAME}"'
    assert form_disposition("päth") == 'form-data; name="päth"'
    assert form_disposition("file", 'a"b\r\nc.gcode') == (
        'form-data; name="file"; filename="a%22b%0D%0Ac.gcode"'
    )
    # What a printer reads back is what was given (quotes and line ends as browsers escape).
    assert form_names(form_disposition("fïeld", NAME)) == {"name": "fïeld", "filename": NAME}


async def test_the_wire_carries_raw_utf8(oe: OctoEverywhere, sim: Simulator) -> None:
    """On the wire (a plain aiohttp server on the LAN route): UTF-8 bytes, nothing encoded."""
    seen: list[bytes] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({"done": True}, status=201)

    app = web.Application()
    app.router.add_post("/api/files/local", capture)
    app.router.add_get("/{tail:.*}", _ok)
    async with _serve(app) as url:
        printer = oe.printer(sim.app_connection(), lan_url=url, route="local")
        await printer.files.upload(
            "/api/files/local",
            b"G1\n",
            filename='ü "q".gcode',
            form={"päth": "f", "select": True},
        )
    body = seen[0]
    assert (
        'Content-Disposition: form-data; name="file"; filename="ü %22q%22.gcode"'.encode() in body
    )
    assert 'Content-Disposition: form-data; name="päth"'.encode() in body
    assert b"filename*" not in body
    assert b"%C3%BC" not in body


async def _ok(_: web.Request) -> web.Response:
    return web.json_response({})
