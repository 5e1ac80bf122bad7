"""oe_async against a real OctoPrint 1.11 (virtual printer) behind the stand-in relay.

Only the library's public API is used on the client side; every request goes through
:class:`~oe_async.testing.relay.StandInRelay`, which checks and strips the App Connection
credentials like OctoEverywhere does. Run with ``scripts/octoprint-integration``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from oe_async import (
    BasicAuth,
    BearerAuth,
    InvalidArgumentError,
    InvalidCredentialsError,
    OctoEverywhere,
    PrinterConnection,
    PrinterHTTPError,
    PrinterOfflineError,
    PrinterWebSocket,
    ReconnectPolicy,
    SubscriptionState,
    SupporterPerksRequiredError,
)
from oe_async.testing.relay import StandInRelay

from .support import API_KEY, USER, client_for, unique_name, wait_for

#: A print the virtual printer finishes in about 1.5 s (G4 really sleeps there).
PRINT_GCODE = b"""; oe_async integration print
G21
G90
M104 S0
M140 S0
G28
G1 X10 Y10 Z0.3 F3000
G4 P500
G1 X20 Y20
G4 P500
G1 X30 Y10
G4 P500
M84
"""
SMALL_GCODE = b"; oe_async integration upload\nG28\nG1 X5 Y5 F3000\nM84\n"
MIB = 1024 * 1024


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _file_sha256(path: Path) -> str:
    def digest() -> str:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(MIB), b""):
                sha.update(block)
        return sha.hexdigest()

    return await asyncio.to_thread(digest)


async def _write(path: Path, data: bytes) -> Path:
    await asyncio.to_thread(path.write_bytes, data)
    return path


async def _passive_login(printer: PrinterConnection) -> dict[str, Any]:
    """``POST /api/login {"passive": true}`` with the API key: the push socket's credentials."""
    login = await printer.post_json("/api/login", {"passive": True})
    assert isinstance(login, dict)
    return login


async def _authenticate(printer: PrinterConnection, ws: PrinterWebSocket) -> None:
    login = await _passive_login(printer)
    assert login["name"] == USER
    await ws.send_json({"auth": f"{login['name']}:{login['session']}"})


async def _local_names(printer: PrinterConnection) -> list[str]:
    listing = await printer.get_json("/api/files/local")
    return [entry["name"] for entry in listing["files"]]


# ---------------------------------------------------------------------- relay basics


async def test_version_through_the_relay(printer: PrinterConnection, relay: StandInRelay) -> None:
    version = await printer.get_json("/api/version")
    assert version["server"].startswith("1.11.")
    assert version["api"] == "0.1"
    record = relay.requests_to("/api/version")[0]
    assert (record.status, record.forwarded) == (200, True)


async def test_wrong_relay_credentials_are_606_and_never_reach_octoprint(
    oe: OctoEverywhere, relay: StandInRelay
) -> None:
    intruder = oe.printer(
        relay.app_connection(auth=BasicAuth("someone", "wrong"), octoprint_api_key=API_KEY)
    )
    with pytest.raises(InvalidCredentialsError):
        await intruder.get_json("/api/version")
    with pytest.raises(InvalidCredentialsError):
        async with intruder.websocket.connect("/sockjs/websocket"):
            pass
    assert [(r.status, r.forwarded) for r in relay.requests] == [(606, False), (606, False)]


async def test_the_relay_credentials_never_reach_octoprint(octoprint_url: URL) -> None:
    # OctoPrint reads "Authorization: Bearer <x>" as an API key. With the relay's bearer
    # token equal to the API key, a forwarded Authorization header would be accepted: the
    # 403 proves the relay stripped it (the key is sent nowhere else).
    async with (
        StandInRelay(octoprint_url, auth=BearerAuth(API_KEY)) as relay,
        client_for(relay) as oe,
    ):
        no_key = oe.printer(relay.app_connection())
        with pytest.raises(PrinterHTTPError) as refused:
            await no_key.get_json("/api/version")
        assert refused.value.status == 403
        with_key = oe.printer(relay.app_connection(octoprint_api_key=API_KEY))
        assert (await with_key.get_json("/api/version"))["server"].startswith("1.11.")


async def test_a_wrong_api_key_is_octoprints_own_403_or_400(
    oe: OctoEverywhere, relay: StandInRelay
) -> None:
    wrong = oe.printer(relay.app_connection(octoprint_api_key="0" * 32))
    with pytest.raises(PrinterHTTPError) as read:
        await wrong.get_json("/api/version")
    assert read.value.status == 403
    # A write with a bad key fails OctoPrint's CSRF check first: 400, not 403.
    with pytest.raises(PrinterHTTPError) as write:
        await wrong.post_json("/api/printer/command", {"commands": ["M117 nope"]})
    assert write.value.status == 400
    assert b"CSRF" in write.value.body


async def test_forced_relay_statuses_in_front_of_octoprint(
    printer: PrinterConnection, relay: StandInRelay
) -> None:
    relay.fail(601, path="/api/job", times=1)
    job = await printer.get_json("/api/job")  # one 601 is retried by the default policy
    assert "state" in job
    assert [r.status for r in relay.requests_to("/api/job")] == [601, 200]
    relay.fail(601, path="/api/job")
    with pytest.raises(PrinterOfflineError):
        await printer.get_json("/api/job")
    relay.clear_faults()
    relay.fail(605, path="/api/connection", times=1)
    with pytest.raises(SupporterPerksRequiredError):
        await printer.get_json("/api/connection")
    assert "current" in await printer.get_json("/api/connection")


# ---------------------------------------------------------------------- control


async def test_commands_answer_204_and_later_json_calls_still_work(
    operational: PrinterConnection, relay: StandInRelay
) -> None:
    printer = operational
    assert await printer.post_json("/api/printer/command", {"commands": ["M117 oe_async"]}) is None
    assert (
        await printer.post_json("/api/printer/tool", {"command": "target", "targets": {"tool0": 0}})
        is None
    )
    assert await printer.post_json("/api/printer/bed", {"command": "target", "target": 0}) is None
    async with printer.request("POST", "/api/printer/command", json={"commands": ["M105"]}) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    # Regression: a body-less 204 once broke every later JSON call.
    state = await printer.get_json("/api/printer")
    assert state["state"]["flags"]["operational"] is True
    assert "tool0" in state["temperature"]
    assert "bed" in state["temperature"]
    assert (await printer.get_json("/api/job"))["state"] in ("Operational", "Printing")
    assert (await printer.get_json("/api/connection"))["current"]["port"] == "VIRTUAL"
    assert (await printer.get_json("/api/version"))["server"].startswith("1.11.")
    settings = await printer.get_json("/api/settings")
    assert "serial" in settings
    statuses = [r.status for r in relay.requests if r.path.startswith("/api/printer/")]
    assert statuses == [204, 204, 204, 204]


async def test_printer_state_is_409_while_disconnected(
    operational: PrinterConnection,
) -> None:
    printer = operational
    assert await printer.post_json("/api/connection", {"command": "disconnect"}) is None

    async def closed() -> bool:
        current = await printer.get_json("/api/connection")
        return bool(current["current"]["state"] in ("Closed", "Offline"))

    await wait_for(closed, what="the virtual printer to disconnect")
    with pytest.raises(PrinterHTTPError) as conflict:
        await printer.get_json("/api/printer")
    assert conflict.value.status == 409
    answer = await printer.post_json(
        "/api/connection", {"command": "connect", "port": "VIRTUAL", "baudrate": 115200}
    )
    assert answer is None

    async def ready() -> bool:
        current = await printer.get_json("/api/connection")
        return bool(current["current"]["state"] == "Operational")

    await wait_for(ready, what="the virtual printer to reconnect")


# ---------------------------------------------------------------------- files


async def test_upload_list_download_and_delete(
    operational: PrinterConnection,
    relay: StandInRelay,
    remote_files: list[str],
    tmp_path: Path,
) -> None:
    printer = operational
    name = unique_name("upload")
    remote_files.append(name)
    source = await _write(tmp_path / name, SMALL_GCODE)
    answer = await printer.files.upload(
        "/api/files/local", source, form={"select": True, "print": False}
    )
    assert answer.status == 201
    assert answer.data["done"] is True
    assert answer.data["effectiveSelect"] is True
    assert answer.data["effectivePrint"] is False
    local = answer.data["files"]["local"]
    assert (local["name"], local["origin"], local["path"]) == (name, "local", name)
    # refs are absolute URLs on OctoPrint's own address (the Host it saw), not the relay's.
    download = URL(local["refs"]["download"])
    assert download.path == f"/downloads/files/local/{name}"
    assert download.origin() != relay.url.origin()
    with pytest.raises(InvalidArgumentError):  # the library will not send credentials there
        await printer.files.download_to(str(download), tmp_path / "elsewhere.gcode")
    upload = relay.requests_to("/api/files/local")[0]
    assert (upload.method, upload.status) == ("POST", 201)

    listing = await printer.get_json("/api/files/local")
    entry = next(f for f in listing["files"] if f["name"] == name)
    assert entry["size"] == len(SMALL_GCODE)
    assert entry["type"] == "machinecode"
    job = await printer.get_json("/api/job")
    assert job["job"]["file"]["name"] == name  # select=true

    dest = await printer.files.download_to(download.path, tmp_path / "back.gcode")
    assert await _file_sha256(dest) == _sha256(SMALL_GCODE)

    async with printer.request("DELETE", f"/api/files/local/{name}") as resp:
        assert resp.status == 204
    assert name not in await _local_names(printer)
    with pytest.raises(PrinterHTTPError) as gone:
        await printer.get_json(f"/api/files/local/{name}")
    assert gone.value.status == 404


async def test_an_upload_without_content_length_is_411(
    printer: PrinterConnection, relay: StandInRelay
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield SMALL_GCODE

    name = unique_name("chunked")
    with pytest.raises(PrinterHTTPError) as refused:
        await printer.files.upload("/api/files/local", chunks(), filename=name)
    assert refused.value.status == 411
    assert relay.requests_to("/api/files/local")[0].forwarded
    assert name not in await _local_names(printer)


async def test_a_download_resumes_after_the_relay_restarts_mid_body(
    printer: PrinterConnection,
    relay: StandInRelay,
    remote_files: list[str],
    tmp_path: Path,
) -> None:
    name = unique_name("resume")
    remote_files.append(name)
    line = b"; padding so the download outlives the socket buffers " + b"." * 64 + b"\n"
    data = b"G28\n" + line * (24 * MIB // len(line)) + b"M84\n"
    source = await _write(tmp_path / name, data)
    answer = await printer.files.upload("/api/files/local", source, form={"select": False})
    assert answer.data["done"] is True
    path = f"/downloads/files/local/{name}"

    async with printer.request("GET", path, headers={"Range": "bytes=4-9"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 4-9/{len(data)}"
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert await resp.read() == data[4:10]

    restarted: list[int] = []

    async def progress(done: int, total: int | None) -> None:
        if not restarted and done >= MIB:
            restarted.append(done)
            await relay.restart()  # drops the download's connection mid-body

    dest = await printer.files.download_to(path, tmp_path / "resumed.gcode", progress=progress)
    assert restarted
    assert await _file_sha256(dest) == _sha256(data)
    statuses = [r.status for r in relay.requests_to(path)]
    assert statuses[0] == 206  # the probe above
    assert statuses[1:] == [200, 206], statuses  # whole file, then the resumed rest


# ---------------------------------------------------------------------- push socket


async def test_a_virtual_print_watched_over_the_push_socket(
    operational: PrinterConnection,
    remote_files: list[str],
    tmp_path: Path,
) -> None:
    printer = operational
    name = unique_name("print")
    remote_files.append(name)
    source = await _write(tmp_path / name, PRINT_GCODE)
    events: list[str] = []
    states: list[str] = []
    kinds: set[str] = set()
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        hello = await ws.receive_json(timeout=10)
        assert "connected" in hello
        assert hello["connected"]["version"].startswith("1.11.")
        await _authenticate(printer, ws)
        answer = await printer.files.upload(
            "/api/files/local", source, form={"select": True, "print": True}
        )
        assert (answer.data["effectiveSelect"], answer.data["effectivePrint"]) == (True, True)
        async with asyncio.timeout(60):
            while "PrintDone" not in events:
                message = await ws.receive_json()
                kinds.update(message)
                if "event" in message:
                    events.append(message["event"]["type"])
                    if message["event"]["type"] == "PrintDone":
                        assert message["event"]["payload"]["name"] == name
                current = message.get("current")
                if current is not None:
                    states.append(current["state"]["text"])
    assert "history" in kinds  # sent only once the passive login was accepted
    assert events.index("PrintStarted") < events.index("PrintDone")
    assert "Printing" in states
    job = await printer.get_json("/api/job")
    assert job["job"]["file"]["name"] == name
    assert job["progress"]["completion"] == pytest.approx(100.0)

    async def idle() -> bool:
        return bool((await printer.get_json("/api/job"))["state"] == "Operational")

    await wait_for(idle, what="the printer to be Operational after the print")


async def test_the_push_socket_says_nothing_before_authentication(
    printer: PrinterConnection,
) -> None:
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        assert "connected" in await ws.receive_json(timeout=10)
        with pytest.raises(TimeoutError):  # RequestTimeoutError is also a TimeoutError
            await ws.receive_json(timeout=1.5)


async def test_a_subscription_reauthenticates_after_the_relay_restarts(
    printer: PrinterConnection, relay: StandInRelay
) -> None:
    authed: list[str] = []
    logins: list[str] = []

    async def hello(ws: PrinterWebSocket) -> None:
        login = await _passive_login(printer)  # a fresh session for every connect
        logins.append(login["session"])
        await ws.send_json({"auth": f"{login['name']}:{login['session']}"})

    def on_message(message: aiohttp.WSMessage) -> None:
        # OctoPrint sends "history" (the initial state) only to an authenticated socket.
        data = json.loads(message.data)
        if "history" in data:
            authed.append(data["history"]["state"]["text"])

    sub = printer.websocket.subscribe(
        "/sockjs/websocket",
        on_message,
        hello=hello,
        reconnect=ReconnectPolicy(max_failures=None, base_delay=0.1, max_delay=0.5),
        heartbeat=None,
    )
    try:
        await wait_for(lambda: len(authed) == 1, what="the first authenticated history")
        await relay.restart()
        await wait_for(
            lambda: len(authed) == 2 and sub.state is SubscriptionState.CONNECTED,
            what="an authenticated history after the restart",
        )
        assert sub.connects == 2
        assert len(set(logins)) == 2  # a fresh passive login for each connect
        assert (await printer.get_json("/api/version"))["server"].startswith("1.11.")
    finally:
        await sub.close()
    handshakes = [r for r in relay.requests if r.websocket]
    assert [r.status for r in handshakes] == [101, 101]
