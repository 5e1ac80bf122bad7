"""Security round 4 (issue 29): what a review of the round's own code found.

Each test fails on the code before its fix and runs against real loopback servers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
from aiohttp import web

from oe_async import (
    CommunicationError,
    HTTPCommand,
    InvalidArgumentError,
    PluginCommandError,
    PrinterConnection,
)
from oe_async.mqtt import PROXY_PATH
from oe_async.testing import Simulator

from .canary import SecretWatch
from .helpers import eventually, listdir, read_bytes
from .test_security_round4_data import EchoHandler, _connection, _secrets_of, echo_relay

# ---------------------------------------------- plugin errors in place of content (raw paths)


async def test_a_plugin_error_answered_for_content_hides_the_connections_secrets(
    sim: Simulator, secrets_never_leak: SecretWatch, tmp_path: Path
) -> None:
    """A 200 ``text/json`` envelope where an image or a file was expected (``Status`` 752)."""

    async def handler(request: web.Request) -> web.Response:
        key = request.headers["X-Api-Key"]
        body = {"Status": 752, "Error": f"refused API key {key}"}
        return web.json_response(body, content_type="text/json")

    async with echo_relay(handler) as url, sim.client() as oe:
        conn = attrs.evolve(_connection(url), app_token=None)  # no App API (download limits)
        secrets_never_leak.secrets.update(_secrets_of(conn))
        printer = oe.printer(conn)
        with pytest.raises(PluginCommandError) as snap:
            await printer.webcam.snapshot(index=0)
        with pytest.raises(PluginCommandError) as frames:
            async with printer.webcam.frames(index=0) as stream:
                await anext(aiter(stream))
        with pytest.raises(PluginCommandError) as download:
            await printer.plugin.download_file("a.gcode", tmp_path / "a.gcode")
    for err in (snap.value, frames.value, download.value):
        assert err.plugin_status == 752
        assert err.message == "refused API key **REDACTED**"
    assert await listdir(tmp_path) == []


# ------------------------------------------------------- a resume answered with a short 206

_FILE = bytes(range(256)) * 20  # 5,120 bytes


def _short_206_printer(ranges: list[str | None], *, rest: bool) -> EchoHandler:
    """A printer whose first answer drops at byte 1,000 and whose 206s cover 1,000 bytes.

    ``rest``: a request from byte 2,000 on gets all the rest (else it is short again).
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        asked = request.headers.get("Range")
        ranges.append(asked)
        start = 0 if asked is None else int(asked.removeprefix("bytes=").rstrip("-"))
        end = len(_FILE) if (start >= 2000 and rest) else min(start + 1000, len(_FILE))
        resp = web.StreamResponse(status=200 if asked is None else 206)
        resp.headers.update({"Accept-Ranges": "bytes", "ETag": '"v1"'})
        if asked is None:
            resp.content_length = len(_FILE)
        else:
            resp.content_length = end - start
            resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(_FILE)}"
        await resp.prepare(request)
        await resp.write(_FILE[start:end])
        if asked is None:  # cut short: the client resumes
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    return handler


_PATH = "/downloads/files/local/a.gcode"


@asynccontextmanager
async def _short_206_connection(
    sim: Simulator, ranges: list[str | None], *, rest: bool
) -> AsyncIterator[PrinterConnection]:
    """A printer connection (no App API) to :func:`_short_206_printer`."""
    async with echo_relay(_short_206_printer(ranges, rest=rest)) as url, sim.client() as oe:
        yield oe.printer(attrs.evolve(_connection(url), app_token=None))


async def test_a_resume_answered_with_part_of_the_rest_asks_for_the_rest(
    sim: Simulator, tmp_path: Path
) -> None:
    ranges: list[str | None] = []
    async with _short_206_connection(sim, ranges, rest=True) as printer:
        dest = await printer.files.download_to(_PATH, tmp_path / "a.gcode")
    assert await read_bytes(dest) == _FILE
    assert ranges == [None, "bytes=1000-", "bytes=2000-"]


async def test_206s_that_never_reach_the_end_fill_the_file_or_fail_never_truncate(
    sim: Simulator, tmp_path: Path
) -> None:
    """Each short 206 moves on, so the download completes; without resume it fails whole."""
    ranges: list[str | None] = []
    async with _short_206_connection(sim, ranges, rest=False) as printer:
        dest = await printer.files.download_to(_PATH, tmp_path / "a.gcode")
        assert await read_bytes(dest) == _FILE
        assert len(ranges) == 6  # 0-999 (dropped), then five 206s of 1,000 bytes and the tail
        with pytest.raises(CommunicationError):
            await printer.files.download_to(_PATH, tmp_path / "b.gcode", resume=False)
    assert await listdir(tmp_path) == ["a.gcode"]


# ---------------------------------------------- an upload's progress callback that raises


class _CallbackError(Exception):
    pass


@pytest.mark.parametrize("retry", [False, True])
async def test_an_upload_progress_callback_that_raises_ends_the_upload_with_its_error(
    sim: Simulator, retry: bool
) -> None:
    uploads: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        uploads.append(len(await request.read()))
        return web.json_response({"done": True})

    def progress(done: int, total: int | None) -> None:
        raise _CallbackError(f"at {done} of {total}")

    async with echo_relay(handler) as url, sim.client() as oe:
        printer = oe.printer(attrs.evolve(_connection(url), app_token=None))
        with pytest.raises(_CallbackError):
            await printer.files.upload(
                "/api/files/local",
                bytes(4 * 1024 * 1024),
                filename="a.gcode",
                progress=progress,
                retry=retry,
            )
    assert len(uploads) <= 1  # never sent again: the caller's error is not the network's


# ----------------------------------------------------- MQTT options checked before anything


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keep_alive": 10}, "not an option of printer.mqtt.connect(): keep_alive"),
        ({"keepalive": -1}, "keepalive must be"),
        ({"max_queued": 0}, "max_queued must be"),
        ({"max_packet_size": 1}, "max_packet_size must be"),
        ({"connect_timeout": 0}, "connect_timeout must be"),
    ],
)
async def test_bad_mqtt_options_are_refused_before_anything_is_sent(
    printer: PrinterConnection, sim: Simulator, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        printer.mqtt.subscribe("device/+/report", lambda message: None, **options)
    if "keep_alive" not in options:
        with pytest.raises(InvalidArgumentError, match=re.escape(message)):
            async with printer.mqtt.connect(**options):  # type: ignore[arg-type]
                pass
    assert not sim.requests_to("relay", PROXY_PATH)  # no handshake reached the relay


# ------------------------------------------ a token in a path's query stays out of everything


async def test_a_subscriptions_query_token_stays_out_of_reprs_task_names_and_logs(
    printer: PrinterConnection, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    token = "SUPERSECRETJWT123"
    caplog.set_level(logging.DEBUG, logger="oe_async")
    sub = printer.websocket.subscribe(f"/websocket?access_token={token}", lambda message: None)
    try:
        await sub.wait_connected()
        names = [task.get_name() for task in asyncio.all_tasks()]
        await sim.close_websockets(1001)  # a reconnect: its log line names the subscription
        await eventually(lambda: sub.connects >= 2, "the subscription to reconnect")
    finally:
        await sub.close()
    assert any("subscription /websocket" in name for name in names)
    for text in (repr(sub), *names, caplog.text):
        assert token not in text


def test_an_http_commands_repr_shows_no_query() -> None:
    command = HTTPCommand(path="/api/job?apikey=SECRETKEY123", headers={"X-Api-Key": "k"})
    assert "SECRETKEY123" not in repr(command)
    assert "/api/job" in repr(command)


# ------------------------------------------- the LAN probe carries no printer secret


@pytest.mark.parametrize("status", [200, 502])
async def test_the_lan_probe_gives_a_device_at_the_address_no_secret(
    sim: Simulator, status: int
) -> None:
    """Another device now holding the printer's LAN address sees no ``X-Api-Key``."""
    seen: list[dict[str, str]] = []

    async def device(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=status, text="a NAS, not the printer")

    async with echo_relay(device) as lan, sim.client() as oe:
        printer = oe.printer(
            sim.app_connection(),
            lan_url=lan,
            route="prefer_local",
            headers={"X-Api-Key": "printer-key-123"},
        )
        assert isinstance(await printer.get_json("/api/printer"), dict)
        assert printer.route.value == "relay"
    assert seen  # the probe reached the device
    for headers in seen:
        assert {name.lower() for name in headers} & {
            "x-api-key",
            "authorization",
            "apptoken",
        } == set()
    # The relay's reference answer (asked when the device answered below 500) is asked
    # with the relay's credential alone, so that both probes are the same request.
    references = [r for r in sim.requests_to("relay") if r.path == "/"]
    assert len(references) == (1 if status < 500 else 0)
    for reference in references:
        assert "Authorization" in reference.headers
        assert "X-Api-Key" not in reference.headers
