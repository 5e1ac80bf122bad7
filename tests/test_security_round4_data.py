"""Security round 4 (issue 29), the data side, and issue 28 item 2's library part.

Server text that echoes our secrets, stored data that lies, hostile webhook bodies, the CLI's
login file, the URL-join cache. Each test fails on the code before the fix; the network
ones run against real loopback servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import secrets as pysecrets
import shutil
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

import oe_async
from oe_async import (
    AppConnection,
    BasicAuth,
    BearerAuth,
    PluginCommandError,
    PrinterHTTPError,
    WebhookEvent,
    WebhookReceiver,
    redact,
)
from oe_async._http import join_url
from oe_async.testing import SECRET_MARKER, Simulator

from .canary import SecretWatch
from .helpers import listdir, write_bytes
from .test_cli import Cli

EchoHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _echoed(request: web.Request) -> str:
    """The request's headers as an echoing server writes them, one per line."""
    return "\r\n".join(f"{name}: {value}" for name, value in request.headers.items())


@asynccontextmanager
async def echo_relay(handler: EchoHandler) -> AsyncIterator[URL]:
    """A loopback "relay" whose every answer comes from ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield URL(f"http://127.0.0.1:{runner.addresses[0][1]}/")
    finally:
        await runner.cleanup()


def _connection(url: URL, *, bearer: bool = False) -> AppConnection:
    auth: BasicAuth | BearerAuth = (
        BearerAuth(f"{SECRET_MARKER}-tok-{pysecrets.token_urlsafe(24)}")
        if bearer
        else BasicAuth(f"echo-user-{pysecrets.token_hex(4)}", f"pw-{pysecrets.token_urlsafe(18)}")
    )
    return AppConnection(
        url=url,
        auth=auth,
        app_token=f"{SECRET_MARKER}-app-{pysecrets.token_urlsafe(12)}",
        octoprint_api_key=f"opkey{pysecrets.token_hex(12)}",
        allow_insecure_loopback=True,
    )


def _secrets_of(conn: AppConnection) -> list[str]:
    auth = conn.auth
    values = [conn.octoprint_api_key or "", auth.header_value, auth.header_value.split()[1]]
    if isinstance(auth, BasicAuth):
        values += [auth.username, auth.password]
    return values


# ------------------------------------------------- 29.19 / 28.2: server text echoing secrets


@pytest.mark.parametrize("bearer", [False, True], ids=["basic", "bearer"])
@pytest.mark.parametrize("shape", ["moonraker", "octoprint", "html"])
async def test_an_answer_echoing_the_request_headers_holds_no_secret(
    sim: Simulator, secrets_never_leak: SecretWatch, bearer: bool, shape: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        text = f"Bad request. You sent:\r\n{_echoed(request)}\r\n"
        if shape == "moonraker":
            return web.json_response({"error": {"code": 400, "message": text}}, status=400)
        if shape == "octoprint":
            return web.json_response({"error": text}, status=400)
        return web.Response(status=400, text=f"<pre>{text}</pre>", content_type="text/html")

    async with echo_relay(handler) as url, sim.client() as oe:
        conn = _connection(url, bearer=bearer)
        secrets_never_leak.secrets.update(_secrets_of(conn))
        printer = oe.printer(conn)
        with pytest.raises(PrinterHTTPError) as info:
            await printer.get_json("/api/printer")
    err = info.value
    body = err.body.decode()
    for secret in _secrets_of(conn):
        for text in (body, err.message, str(err), repr(err), repr(err.server_message)):
            assert secret not in text
    assert "Authorization: **REDACTED**" in body
    assert "X-Api-Key: **REDACTED**" in body
    if shape != "html":
        json.loads(err.body)  # still JSON: quotes and escapes kept
        assert "Authorization: **REDACTED**" in err.message
        assert "User-Agent" in err.message  # the rest of the server's text stays


async def test_a_plugin_error_echoing_a_secret_hides_it(
    sim: Simulator, secrets_never_leak: SecretWatch
) -> None:
    """The envelope's ``Error`` (200 answer) and a raw endpoint's JSON error body."""

    async def handler(request: web.Request) -> web.Response:
        key = request.headers["X-Api-Key"]
        if "snapshot" in request.path:
            return web.json_response({"Error": f"camera refused key {key}"}, status=500)
        return web.json_response({"Status": 789, "Error": f"printer rejected key {key}"})

    async with echo_relay(handler) as url, sim.client() as oe:
        conn = _connection(url)
        secrets_never_leak.secrets.update(_secrets_of(conn))
        printer = oe.printer(conn)
        with pytest.raises(PluginCommandError) as info:
            await printer.plugin.status()
        with pytest.raises(PluginCommandError) as raw:
            await printer.webcam.snapshot(index=0)
    assert info.value.message == "printer rejected key **REDACTED**"
    assert raw.value.message == "camera refused key **REDACTED**"


async def test_the_unique_host_of_the_url_is_hidden_wherever_it_appears() -> None:
    conn = AppConnection(
        url="https://app-q7Zk2pUniqueId.octoeverywhere.com",
        auth=BasicAuth("user-abcdef", "pw-123456789"),
    )
    text = "proxy app-q7zk2puniqueid.octoeverywhere.com refused user-abcdef"
    assert (
        redact(text, secrets=conn) == "proxy **REDACTED**.octoeverywhere.com refused **REDACTED**"
    )
    body = json.dumps({"error": "no route to APP-Q7ZK2PUNIQUEID.octoeverywhere.com"}).encode()
    err = oe_async.decode_http_error(502, {}, body, secrets=["app-q7Zk2pUniqueId"])
    assert isinstance(err, PrinterHTTPError)
    assert b"Q7ZK2P" not in err.body.upper()
    assert "Q7ZK2P" not in err.message.upper()


class TestRedactText:
    """``oe_async.redact(text)``: the one place text is scrubbed (issue 28 item 2)."""

    B64 = "b2UtdXNlcjpzM2NyM3QtcGFzc3dvcmQ="

    @pytest.mark.parametrize(
        "text",
        [
            f"Authorization: Basic {B64}",
            f"authorization:Basic {B64}\nnext line",
            f'{{"Authorization": "Basic {B64}", "Host": "x"}}',
            f"{{'Authorization': 'Basic {B64}'}}",
            f'echo {{\\"Authorization\\": \\"Basic {B64}\\"}}',  # inside a raw JSON string
            f"Proxy-Authorization: Basic {B64}",
        ],
    )
    def test_an_authorization_value_goes_whole(self, text: str) -> None:
        shown = redact(text)
        assert self.B64 not in shown
        assert "Basic" not in shown  # the scheme and the credential, not only the scheme
        assert "**REDACTED**" in shown

    @pytest.mark.parametrize(
        ("text", "hidden"),
        [
            ('Authorization: Digest username="bob", response="6629fae4"', "6629fae4"),
            ("Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "YIIGhg"),
            ("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015", "AKIDEXAMPLE"),
            ("Authorization: token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7"),
            ("Cookie: session=abc123; csrftoken=zzz999", "zzz999"),
            ("X-Auth-Token: 0123456789abcdef", "0123456789abcdef"),
            ("password 'correct horse battery'", "battery"),
        ],
    )
    def test_credentials_of_any_scheme(self, text: str, hidden: str) -> None:
        assert hidden not in redact(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Authorization header is missing",
            "Basic authentication is required",
            "a plain sentence",
            "token expired",
        ],
    )
    def test_prose_stays_readable(self, text: str) -> None:
        assert redact(text) == text

    def test_known_secrets_of_a_connection(self) -> None:
        conn = AppConnection(
            url="https://app-abcdef123.octoeverywhere.com",
            auth=BearerAuth("tok_9f8e7d6c5b4a"),
            app_token="apptok-1234567",
            octoprint_api_key="OPKEY0987654321",
        )
        text = (
            "key OPKEY0987654321 / TOK_9F8E7D6C5B4A, app apptok-1234567, "
            "host app-abcdef123.octoeverywhere.com, quoted tok_9f8e7d6c5b4a"
        )
        shown = redact(text, secrets=conn)
        for secret in ("OPKEY", "9F8E7D", "9f8e7d", "apptok", "abcdef123"):
            assert secret not in shown
        assert redact({"msg": text}, secrets=["OPKEY0987654321"]) == {
            "msg": redact(text.replace("OPKEY0987654321", "**REDACTED**"))
        }


# ------------------------------------------------------------- 29.6, 29.11, 29.12: stored data

RELAY = "https://app-abc123.octoeverywhere.com/"
STORED = {"url": RELAY, "auth": {"type": "bearer", "token": "tok-123456"}, "app_token": "app-1"}


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\x00.octoeverywhere.com/",
        "https://evil.example%00.octoeverywhere.com/",
        "https://evil.example\x01.octoeverywhere.com/",
        "https://evil example.octoeverywhere.com/",
        "https://app-abc123.octoeverywhere.com/\x00",
    ],
)
def test_a_nul_or_odd_byte_in_the_host_is_refused(url: str) -> None:
    with pytest.raises(oe_async.InvalidArgumentError) as info:
        AppConnection.from_dict({**STORED, "url": url})
    assert "url" in str(info.value)
    assert "evil" not in str(info.value)
    if "evil" in url:  # a yarl.URL, not only a string
        with pytest.raises(oe_async.InvalidArgumentError):
            AppConnection(url=URL(url, encoded="%00" in url), auth=BearerAuth("tok-123456"))


def test_a_nul_in_the_completion_urls_relay_url_is_a_portal_error(sim: Simulator) -> None:
    completion = sim.completion_url(url="https://evil.example%00.octoeverywhere.com")
    # the simulator's url is replaced by the hostile one, percent-encoded once more
    raw = str(completion).replace("%2500", "%00")
    with pytest.raises(oe_async.PortalError) as info:
        AppConnection.from_completion_url(raw)
    assert "evil" not in str(info.value)


@pytest.mark.parametrize("key", ["abc\r\nX-Evil: 1", "abc\x00def", "abc def", " ", ""])
def test_a_header_breaking_octoprint_key_is_refused_at_input(sim: Simulator, key: str) -> None:
    with pytest.raises(oe_async.InvalidArgumentError) as info:
        AppConnection.from_dict({**STORED, "octoprint_api_key": key})
    assert "octoprint_api_key" in str(info.value)
    assert key.strip() == "" or key not in str(info.value)
    query = str(sim.completion_url(octoPrintApiKey=key))
    if key:  # an empty one is simply "none given"
        with pytest.raises(oe_async.PortalError, match="octoprint_api_key"):
            AppConnection.from_completion_url(query)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"allow_insecure_loopback": "false"}, "$.allow_insecure_loopback"),
        ({"allow_insecure_loopback": 1}, "$.allow_insecure_loopback"),
        ({"auth": {"type": "basic", "username": None, "password": "pw-123456"}}, "username"),
        ({"auth": {"type": "basic", "username": "u", "password": ["pw"]}}, "password"),
        ({"auth": {"type": "bearer", "token": {"t": 1}}}, "token"),
        ({"app_token": 12345}, "$.app_token"),
        ({"printer_name": ["Voron"]}, "$.printer_name"),
        ({"id": 7}, "$.id"),
        ({"url": ["https://app-abc123.octoeverywhere.com/"]}, "$.url"),
    ],
)
def test_stored_data_of_the_wrong_type_is_refused_not_coerced(
    change: dict[str, object], where: str
) -> None:
    with pytest.raises(oe_async.InvalidArgumentError) as info:
        AppConnection.from_dict({**STORED, **change})
    assert where in str(info.value)
    assert "expected" in str(info.value)


def test_stored_data_still_round_trips() -> None:
    conn = AppConnection(
        url=RELAY,
        auth=BasicAuth("user-1", "pw-123456"),
        app_token="app-1",
        id="c-1",
        printer_name="Voron",
        octoprint_api_key="ABCDEF0123456789",
    )
    assert AppConnection.from_dict(conn.to_dict()) == conn
    assert AppConnection.from_dict(json.loads(json.dumps(conn.to_dict()))) == conn


# ------------------------------------------------------- 29.17 and the login file (the CLI)


@pytest.fixture
def cli(tmp_path: Path, sim: Simulator) -> Cli:
    return Cli(tmp_path, sim)


async def test_a_deeply_nested_login_file_is_a_clear_error(cli: Cli) -> None:
    await asyncio.to_thread(cli.config.parent.mkdir, parents=True)
    await write_bytes(cli.config, b'{"connection": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    await asyncio.to_thread(cli.config.chmod, 0o600)
    run = await cli("info")
    assert run.code == 4, run.err
    assert "Traceback" not in run.err
    assert "nested too deeply" in run.err


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(
    ("mode", "code", "said"),
    [(0o644, 0, "readable by other users"), (0o620, 4, "changed by other users")],
)
async def test_a_login_file_others_can_read_or_change(
    cli: Cli, mode: int, code: int, said: str
) -> None:
    assert (await cli.login()).code == 0
    await asyncio.to_thread(cli.config.chmod, mode)
    run = await cli("info")
    assert run.code == code, run.err
    assert said in " ".join(run.err.split())
    assert f"chmod 600 {cli.config}" in " ".join(run.err.split())
    cli.assert_no_secret(run)
    await asyncio.to_thread(cli.config.chmod, 0o600)
    quiet = await cli("info")
    assert quiet.code == 0
    assert "warning" not in quiet.err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None,
    reason="needs root to mount a small tmpfs (a full disk)",
)
async def test_a_full_disk_is_one_error_line_and_no_partial_file(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    """Decision: the library raises the OSError as it is (errno intact, nothing left behind);
    the CLI shows it as one line with its own exit code (13)."""
    assert (await cli.login()).code == 0
    full = tmp_path / "full"
    await asyncio.to_thread(full.mkdir)
    mount = await asyncio.create_subprocess_exec(
        "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)
    )
    if await mount.wait() != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        sim.files.add("gcode/big.gcode", b"G1 X1\n" * 50_000)  # 300 KB > 64 KiB
        run = await cli("download", "gcode/big.gcode", str(full / "big.gcode"))
        assert run.code == 13, run.err
        assert "No space left on device" in run.err
        assert "Traceback" not in run.err
        assert await listdir(full) == []
    finally:
        umount = await asyncio.create_subprocess_exec("umount", str(full))
        await umount.wait()


# ------------------------------------------------ 29.3, 29.16, 29.21 and callbacks: webhooks

HOOK_SECRET = f"{SECRET_MARKER}-whsec-{pysecrets.token_hex(8)}"


def _payload(**fields: object) -> bytes:
    return json.dumps({"EventType": 6, "SecretKey": HOOK_SECRET, "Progress": 40, **fields}).encode()


@asynccontextmanager
async def webhook_app(
    receiver: WebhookReceiver, *, auto_decompress: bool = True
) -> AsyncIterator[tuple[str, int]]:
    app = web.Application(handler_args={"auto_decompress": auto_decompress})
    receiver.attach(app, "/hook")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "127.0.0.1", runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _post_raw(
    where: tuple[str, int], body: bytes, headers: dict[str, str], *, send_all: bool = True
) -> tuple[int, bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """POST over a raw socket; returns the status, the answer's body and the open stream."""
    reader, writer = await asyncio.open_connection(*where)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k != "Content-Length")
    length = headers.get("Content-Length", str(len(body)))
    writer.write(
        f"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{head}\r\n".encode()
    )
    writer.write(body if send_all else body[:1])
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 30)
    status = int(status_line.split()[1]) if status_line else 0
    answer = b""
    while line := await asyncio.wait_for(reader.readline(), 30):
        if line == b"\r\n":
            answer = await asyncio.wait_for(reader.read(4096), 30)
            break
    return status, answer, reader, writer


def _gzip_bomb(inflated: int = 64 * 1024 * 1024) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b'{"EventType": 1, "Padding": "')]
    block = b" " * (1024 * 1024)
    parts += [packer.compress(block) for _ in range(inflated // len(block))]
    parts += [packer.compress(b'"}'), packer.flush()]
    return b"".join(parts)


@pytest.mark.parametrize("auto_decompress", [True, False], ids=["aiohttp-inflates", "we-inflate"])
async def test_a_compressed_bomb_costs_next_to_no_cpu(auto_decompress: bool) -> None:
    """A 65 KB gzip body inflating to 64 MiB: refused after ``max_body`` inflated bytes.

    Before: aiohttp inflated the whole of it (its "lingering" read after the 413), ~0.2 s
    of loop CPU for 64 MiB (0.7 s for 256 MiB), and the connection stayed open.
    """
    events: list[WebhookEvent] = []
    receiver = WebhookReceiver(events.append, secret_key=HOOK_SECRET)
    bomb = _gzip_bomb()
    async with webhook_app(receiver, auto_decompress=auto_decompress) as where:
        started = time.thread_time()
        reader, writer = await asyncio.open_connection(*where)
        writer.write(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(bomb)}\r\n\r\n".encode()
            + bomb
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            # The answer (413), then the end of the connection: nothing lingers.
            while await asyncio.wait_for(reader.read(65536), 30):
                pass
        writer.close()
        cpu = time.thread_time() - started
    assert receiver.rejected == 1
    assert events == []
    assert cpu < 0.1, f"{cpu:.3f} s of CPU for one compressed bomb"


@pytest.mark.parametrize("auto_decompress", [True, False], ids=["aiohttp-inflates", "we-inflate"])
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_a_small_compressed_webhook_is_delivered(auto_decompress: bool, coding: str) -> None:
    events: list[WebhookEvent] = []
    receiver = WebhookReceiver(events.append, secret_key=HOOK_SECRET)
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -15}[coding]
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = packer.compress(_payload()) + packer.flush()
    header = "gzip" if coding == "gzip" else "deflate"
    async with webhook_app(receiver, auto_decompress=auto_decompress) as where:
        status, _, _, writer = await _post_raw(where, body, {"Content-Encoding": header})
        writer.close()
        await receiver.drain()
    assert status == 200
    assert [e.progress for e in events] == [40]


@pytest.mark.parametrize("auto_decompress", [True, False], ids=["aiohttp-inflates", "we-inflate"])
async def test_other_content_codings_are_415_and_garbage_is_400(auto_decompress: bool) -> None:
    receiver = WebhookReceiver(lambda _: None, secret_key=HOOK_SECRET)
    async with webhook_app(receiver, auto_decompress=auto_decompress) as where:
        status, _, _, writer = await _post_raw(where, b"\x1f\x8b", {"Content-Encoding": "br"})
        writer.close()
        # aiohttp answers 400 itself when it would inflate br and Brotli is not installed
        assert status == 415 or (auto_decompress and status == 400)
        garbage = b"\x1f\x8b\x08\x00" + b"\x00" * 50
        status, _, _, writer = await _post_raw(where, garbage, {"Content-Encoding": "gzip"})
        writer.close()
        assert status == 400


async def test_a_dripping_body_ends_at_the_read_deadline() -> None:
    """29.16: 1 byte of 100 and then nothing: 408 at ``read_timeout``, connection closed."""
    receiver = WebhookReceiver(lambda _: None, secret_key=HOOK_SECRET, read_timeout=0.5)
    async with webhook_app(receiver) as where:
        started = time.monotonic()
        status, _, reader, writer = await _post_raw(
            where, _payload(), {"Content-Length": "100"}, send_all=False
        )
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the receiver
        elapsed = time.monotonic() - started
        writer.close()
    assert status == 408
    assert elapsed < 5  # before: held until the client gave up (no deadline at all)


@pytest.mark.parametrize("event_type", [10**30, -1, 0, 2**31, 99])
async def test_an_unknown_event_type_is_delivered_with_200(event_type: int) -> None:
    """29.21: a 400 made OctoEverywhere retry, then disable the hook."""
    events: list[WebhookEvent] = []
    receiver = WebhookReceiver(events.append, secret_key=HOOK_SECRET)
    async with webhook_app(receiver) as where:
        status, _, _, writer = await _post_raw(where, _payload(EventType=event_type), {})
        writer.close()
        await receiver.drain()
    assert status == 200
    assert [int(e.event_type) for e in events] == [event_type]
    assert not events[0].event_type.known


async def test_callbacks_in_flight_are_bounded() -> None:
    """Information item: no limit on concurrent callbacks. Past ``max_callbacks``: 503."""
    release = asyncio.Event()
    started: list[WebhookEvent] = []

    async def slow(event: WebhookEvent) -> None:
        started.append(event)
        await release.wait()

    receiver = WebhookReceiver(slow, secret_key=HOOK_SECRET, max_callbacks=2)
    async with webhook_app(receiver) as where:
        statuses = []
        for _ in range(3):
            status, _, _, writer = await _post_raw(where, _payload(), {})
            writer.close()
            statuses.append(status)
        assert statuses == [200, 200, 503]
        release.set()
        await receiver.drain()
        status, _, _, writer = await _post_raw(where, _payload(), {})
        writer.close()
        await receiver.drain()
    assert status == 200
    assert len(started) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"read_timeout": 0},
        {"read_timeout": float("nan")},
        {"max_callbacks": 0},
        {"max_callbacks": True},
    ],
)
def test_receiver_limits_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(oe_async.InvalidArgumentError):
        WebhookReceiver(lambda _: None, secret_key=HOOK_SECRET, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------ 29.15 and 29.20: URL joining


def _retained_after(work: Callable[[], None]) -> int:
    """Bytes still allocated (by tracemalloc's count) after ``work`` and a collection."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_the_join_cache_is_bounded_by_size_not_count() -> None:
    """6,000 unique 7 KB paths kept 57 MiB after close() (4,096 cached joins)."""
    base = URL("https://app-abc123.octoeverywhere.com/")

    def work() -> None:
        for n in range(6_000):
            join_url(base, f"/files/{n:05d}/" + "p" * 7_000)

    # What stays is yarl's own caches (128 entries each, ~2.7 MiB here); ours keeps no
    # path over 256 characters. Before: 4,096 joins of ~14 KB, 57 MiB.
    assert _retained_after(work) < 4 * 1024 * 1024


def test_the_join_cache_keeps_no_printers_url() -> None:
    """Each printer's unique relay URL stayed in the process-wide cache after close()."""

    def work() -> None:
        for n in range(1_000):  # 1,000 printers with big unique base URLs, 3 paths each
            base = URL(f"https://app-{n:04d}.octoeverywhere.com/{'u' * 20_000}/")
            for path in ("/api/printer", "/api/job", "/octoeverywhere-command-api/status"):
                join_url(base, path)

    # yarl's own caches keep up to 128 URLs each (~8 MiB of these); before, ours kept
    # 3,000 (base, path) joins: ~120 MiB.
    assert _retained_after(work) < 16 * 1024 * 1024


@pytest.mark.parametrize(
    "path", ["https://a\\b.example/x", "http://127.0.0.1\\@evil.example/x", "https://[::1\\]/x"]
)
async def test_a_backslash_in_an_absolute_paths_authority_is_an_argument_error(
    printer: oe_async.PrinterConnection, sim: Simulator, path: str
) -> None:
    """29.20: yarl's bare ValueError ("backslash ... not allowed in the authority")."""
    before = len(sim.requests)
    with pytest.raises(oe_async.InvalidArgumentError, match="backslash"):
        await printer.get_json(path)
    assert len(sim.requests) == before  # nothing sent
