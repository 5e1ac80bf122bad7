"""The stand-in relay (oe_async.testing.relay) in front of a real loopback server."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from oe_async import (
    AppConnectionRevokedError,
    BasicAuth,
    BearerAuth,
    CommunicationError,
    InvalidArgumentError,
    InvalidCredentialsError,
    OctoEverywhere,
    PrinterConnection,
    PrinterOfflineError,
    ReconnectPolicy,
    RetryPolicy,
    SubscriptionEvent,
    SubscriptionState,
)
from oe_async.testing import SECRET_MARKER
from oe_async.testing.relay import StandInRelay

from .helpers import eventually

MIB = 1024 * 1024
BLOCK = bytes(range(256)) * 1024  # 256 KiB, yielded again and again (no new allocations)
API_KEY = "relay-test-printer-key"


class Origin:
    """The "printer": a real aiohttp.web server on loopback that records what it sees."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.ws_closes: list[int | None] = []
        self.url = URL()
        self._runner: web.AppRunner | None = None

    def _record(self, request: web.Request, **extra: Any) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "headers": CIMultiDict(request.headers),
            **extra,
        }
        self.seen.append(entry)
        return entry

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        entry = self._record(request, body=body)
        return web.json_response(
            {
                "method": entry["method"],
                "raw_path": entry["raw_path"],
                "body": body.decode(),
                "headers": dict(request.headers),
            }
        )

    async def sink(self, request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        self._record(request, size=size)
        return web.json_response(
            {
                "size": size,
                "sha256": digest.hexdigest(),
                "content_length": request.headers.get("Content-Length"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
            }
        )

    async def source(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        self._record(request)
        response = web.StreamResponse()
        if "chunked" not in request.query:
            response.content_length = size
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        sent = 0
        while sent < size:
            piece = BLOCK if size - sent >= len(BLOCK) else BLOCK[: size - sent]
            await response.write(piece)
            sent += len(piece)
            if "drop" in request.query and sent >= size // 2:
                assert request.transport is not None
                request.transport.abort()
                return response
        await response.write_eof()
        return response

    async def special(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        kind = request.match_info["kind"]
        if kind == "redirect":
            return web.Response(status=302, headers={"Location": "/elsewhere?x=1"})
        if kind == "teapot":
            response = web.Response(status=418, reason="I'm a teapot", text="short and stout")
            response.headers.add("Set-Cookie", "a=1; Path=/")
            response.headers.add("Set-Cookie", "b=2; Path=/")
            response.headers["X-Printer"] = "yes"
            return response
        if kind == "empty":
            return web.Response(status=204)
        if kind == "gzip":
            return web.Response(
                body=gzip.compress(b'{"compressed": true}' * 100, mtime=0),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        raise web.HTTPNotFound

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._record(request)
        ws = web.WebSocketResponse(protocols=("v1.printer",))
        await ws.prepare(request)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                if message.data.startswith("close:"):
                    await ws.close(code=int(message.data[6:]), message=b"printer says bye")
                    break
                await ws.send_str("echo:" + message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        self.ws_closes.append(ws.close_code)
        return ws

    async def __aenter__(self) -> Origin:
        app = web.Application()
        app.router.add_get("/ws", self.websocket)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_route("*", "/echo/{tail:.*}", self.echo)
        app.router.add_route("*", "/sink", self.sink)
        app.router.add_get("/source", self.source)  # HEAD too
        app.router.add_get("/special/{kind}", self.special)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = URL(f"http://127.0.0.1:{port}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest_asyncio.fixture
async def origin() -> AsyncIterator[Origin]:
    async with Origin() as server:
        yield server


@pytest_asyncio.fixture
async def relay(origin: Origin) -> AsyncIterator[StandInRelay]:
    async with StandInRelay(origin.url) as stand_in:
        yield stand_in


def client_for(relay: StandInRelay) -> OctoEverywhere:
    return OctoEverywhere(
        "relay-tests",
        app_api_url=relay.app_api_url,
        allow_insecure_loopback=True,
        retry=RetryPolicy(attempts=1),
    )


@pytest_asyncio.fixture
async def oe(relay: StandInRelay) -> AsyncIterator[OctoEverywhere]:
    async with client_for(relay) as client:
        yield client


@pytest_asyncio.fixture
async def printer(oe: OctoEverywhere, relay: StandInRelay) -> PrinterConnection:
    return oe.printer(relay.app_connection(octoprint_api_key=API_KEY))


@pytest_asyncio.fixture
async def raw() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for what the library deliberately does not expose."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "target",
    [
        "http://192.0.2.10:5000",
        "http://example.com/",
        "http://printer.localhost/",
        "ftp://127.0.0.1/",
        "/relative",
    ],
)
def test_refuses_a_target_that_is_not_loopback(target: str) -> None:
    with pytest.raises(InvalidArgumentError):
        StandInRelay(target)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "example.com"])  # noqa: S104
def test_refuses_a_bind_host_that_is_not_loopback(host: str) -> None:
    with pytest.raises(InvalidArgumentError):
        StandInRelay("http://127.0.0.1:5000", host=host)


def test_generated_credentials_carry_the_marker() -> None:
    relay = StandInRelay("http://localhost:5000")
    assert isinstance(relay.auth, BasicAuth)
    assert SECRET_MARKER in relay.auth.username
    assert SECRET_MARKER in relay.auth.password
    assert SECRET_MARKER in relay.app_token
    assert relay.auth.header_value in relay.secrets()
    assert SECRET_MARKER not in repr(relay)


# ---------------------------------------------------------------------- credentials


async def test_missing_or_wrong_credentials_get_606_and_never_reach_the_printer(
    relay: StandInRelay, origin: Origin, raw: aiohttp.ClientSession
) -> None:
    wrong = BasicAuth("someone", "wrong-password").header_value
    for headers in ({}, {"Authorization": wrong}, {"Authorization": "Bearer nope"}):
        async with raw.get(relay.url / "echo", headers=headers) as resp:
            assert resp.status == 606
            assert "606" in await resp.text()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await raw.ws_connect(relay.url / "ws")
    assert refused.value.status == 606
    assert origin.seen == []
    assert [r.status for r in relay.requests] == [606, 606, 606, 606]
    assert not any(r.forwarded for r in relay.requests)
    assert relay.requests[-1].websocket


async def test_the_library_maps_606_to_invalid_credentials(
    oe: OctoEverywhere, relay: StandInRelay, origin: Origin
) -> None:
    printer = oe.printer(relay.app_connection(auth=BasicAuth("someone", "wrong")))
    with pytest.raises(InvalidCredentialsError):
        await printer.get_json("/echo")
    with pytest.raises(InvalidCredentialsError):
        async with printer.websocket.connect("/ws"):
            pass
    assert origin.seen == []


async def test_bearer_credentials(origin: Origin) -> None:
    token = BearerAuth(f"{SECRET_MARKER}-bearer-token")
    async with StandInRelay(origin.url, auth=token) as relay, client_for(relay) as oe:
        answer = await oe.printer(relay.app_connection()).get_json("/echo")
    assert "Authorization" not in answer["headers"]
    assert relay.requests[0].status == 200


# ---------------------------------------------------------------------- plain HTTP


async def test_forwards_the_request_and_strips_the_relay_credentials(
    printer: PrinterConnection, relay: StandInRelay, origin: Origin
) -> None:
    answer = await printer.post_json("/echo/a%2Fb?x=1&y=2", {"hello": "printer"})
    assert answer["method"] == "POST"
    assert answer["raw_path"] == "/echo/a%2Fb?x=1&y=2"
    assert answer["body"] == '{"hello": "printer"}'
    seen = origin.seen[0]["headers"]
    assert "Authorization" not in seen
    assert seen["X-Api-Key"] == API_KEY
    assert seen["Host"] == f"127.0.0.1:{origin.url.port}"
    assert seen["Content-Length"] == str(len(answer["body"]))
    record = relay.requests[0]
    assert (record.method, record.path, record.query) == ("POST", "/echo/a/b", "x=1&y=2")
    assert (record.status, record.forwarded, record.websocket) == (200, True, False)


async def test_the_raw_path_and_query_travel_unchanged(
    relay: StandInRelay, raw: aiohttp.ClientSession
) -> None:
    raw_path = "/echo/a%2Fb%20c?y=%2F&z=%3D%26&empty=&flag"
    url = URL(str(relay.url.origin()) + raw_path, encoded=True)
    async with raw.get(url, headers={"Authorization": relay.auth.header_value}) as resp:
        assert (await resp.json())["raw_path"] == raw_path


async def test_hop_by_hop_headers_are_not_forwarded(
    relay: StandInRelay, origin: Origin, raw: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": relay.auth.header_value,
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "private to this hop",
        "Proxy-Authorization": "Basic eDp5",
        "X-End-To-End": "kept",
    }
    not_sent = ("Accept", "Accept-Encoding", "User-Agent")
    async with raw.get(relay.url / "echo", headers=headers, skip_auto_headers=not_sent) as resp:
        assert resp.status == 200
    seen = origin.seen[0]["headers"]
    assert "X-Hop" not in seen
    assert "Proxy-Authorization" not in seen
    assert "Authorization" not in seen
    assert seen["X-End-To-End"] == "kept"
    # What the client did not send, the relay does not invent.
    assert "Accept-Encoding" not in seen
    assert "User-Agent" not in seen


async def test_statuses_headers_and_redirects_pass_through(
    relay: StandInRelay, raw: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": relay.auth.header_value}
    async with raw.get(relay.url / "special/teapot", headers=auth) as resp:
        assert resp.status == 418
        assert resp.reason == "I'm a teapot"
        assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert resp.headers["X-Printer"] == "yes"
        assert await resp.text() == "short and stout"
    async with raw.get(relay.url / "special/redirect", headers=auth, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/elsewhere?x=1"  # untouched
    async with raw.get(relay.url / "special/empty", headers=auth) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    async with raw.head(relay.url.with_path("/source").with_query(size=12345), headers=auth) as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == "12345"


async def test_compressed_bodies_pass_through_byte_identical(
    relay: StandInRelay, origin: Origin, raw: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": relay.auth.header_value}
    async with raw.get(origin.url / "special/gzip") as direct:
        expected = await direct.read()
    async with raw.get(relay.url / "special/gzip", headers=auth) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Length"] == str(len(expected))
        assert await resp.read() == expected


async def test_library_json_calls_after_a_204(printer: PrinterConnection) -> None:
    async with printer.request("GET", "/special/empty") as resp:
        assert resp.status == 204
    for _ in range(3):
        assert (await printer.get_json("/echo"))["method"] == "GET"


# ---------------------------------------------------------------------- streaming


async def _blocks(size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        piece = BLOCK if size - sent >= len(BLOCK) else BLOCK[: size - sent]
        sent += len(piece)
        yield piece


def _expected_sha(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        digest.update(BLOCK)
    digest.update(BLOCK[: size % len(BLOCK)])
    return digest.hexdigest()


async def test_streams_64_mib_both_ways_with_flat_memory(
    printer: PrinterConnection, relay: StandInRelay
) -> None:
    size = 64 * MIB + 12345
    expected = _expected_sha(size)
    tracemalloc.start()
    try:
        # Known size: Content-Length travels end to end (OctoPrint answers 411 without it).
        sized = await printer.files.upload("/sink", _blocks(size), raw=True, size=size)
        # Unknown size: chunked end to end.
        chunked = await printer.files.upload("/sink", _blocks(size), raw=True)
        digest, received = hashlib.sha256(), 0
        async with printer.files.download(f"/source?size={size}") as chunks:
            assert chunks.total == size
            async for chunk in chunks:
                digest.update(chunk)
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sized.data == {
        "size": size,
        "sha256": expected,
        "content_length": str(size),
        "transfer_encoding": None,
    }
    assert chunked.data["size"] == size
    assert chunked.data["sha256"] == expected
    assert chunked.data["content_length"] is None
    assert chunked.data["transfer_encoding"] == "chunked"
    assert (received, digest.hexdigest()) == (size, expected)
    # Client, relay and printer all live in this process: ~200 MiB went through three hops.
    assert peak < 16 * MIB, f"peak traced memory {peak / MIB:.1f} MiB"
    assert [r.status for r in relay.requests if r.path != "/api/appconnection/info"] == [
        200,
        200,
        200,
    ]


async def test_a_body_the_printer_drops_is_not_passed_off_as_complete(
    printer: PrinterConnection, raw: aiohttp.ClientSession, relay: StandInRelay
) -> None:
    size = 4 * MIB
    url = relay.url.with_path("/source").with_query(size=size, drop=1)
    async with raw.get(url, headers={"Authorization": relay.auth.header_value}) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    with pytest.raises(CommunicationError):
        async with printer.files.download(f"/source?size={size}&drop=1&chunked=1") as chunks:
            async for _ in chunks:
                pass


# ---------------------------------------------------------------------- WebSockets


async def test_websockets_are_proxied_both_ways(
    printer: PrinterConnection, relay: StandInRelay, origin: Origin
) -> None:
    async with printer.websocket.connect("/ws", protocols=("v1.printer",)) as ws:
        assert ws.protocol == "v1.printer"
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "echo:hello"
        await ws.send_bytes(b"\x00\x01\x02")
        assert (await ws.receive(timeout=5)).data == b"\x02\x01\x00"
        await ws.send_str("close:4001")
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 4001
        assert closing.extra == "printer says bye"
    handshake = origin.seen[0]["headers"]
    assert "Authorization" not in handshake
    assert handshake["X-Api-Key"] == API_KEY
    record = relay.requests_to("/ws")[0]
    assert (record.status, record.websocket, record.forwarded) == (101, True, True)


async def test_a_client_close_code_reaches_the_printer(
    printer: PrinterConnection, origin: Origin
) -> None:
    async with printer.websocket.connect("/ws") as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "echo:ping"
        await ws.close(code=4002)
    await eventually(lambda: origin.ws_closes, "the printer's side sees the close")
    assert origin.ws_closes == [4002]


async def test_close_websockets_with_a_relay_code(
    printer: PrinterConnection, relay: StandInRelay, origin: Origin
) -> None:
    async with printer.websocket.connect("/ws") as ws:
        await ws.send_str("up")
        assert (await ws.receive(timeout=5)).data == "echo:up"
        assert await relay.close_websockets(604) == 1
        with pytest.raises(AppConnectionRevokedError):
            await ws.receive(timeout=5)
    await eventually(lambda: origin.ws_closes, "the printer's side sees the close")
    assert origin.ws_closes == [1000]  # the printer's side is closed normally


# ---------------------------------------------------------------------- faults, outages


async def test_forced_faults(
    printer: PrinterConnection, relay: StandInRelay, origin: Origin, raw: aiohttp.ClientSession
) -> None:
    relay.fail(601, path="/echo*", times=1)
    with pytest.raises(PrinterOfflineError):
        await printer.get_json("/echo")
    assert (await printer.get_json("/echo"))["method"] == "GET"  # times=1: used up
    fault = relay.fail(604, path="/ws", method="GET")
    with pytest.raises(AppConnectionRevokedError):
        async with printer.websocket.connect("/ws"):
            pass
    relay.faults.remove(fault)
    relay.fail(418, body=b"custom", headers={"Retry-After": "3"}, times=1)
    auth = {"Authorization": relay.auth.header_value}
    async with raw.get(relay.url / "echo", headers=auth) as resp:
        assert (resp.status, await resp.read(), resp.headers["Retry-After"]) == (
            418,
            b"custom",
            "3",
        )
    echo = [r for r in relay.requests if r.path == "/echo"]
    assert [(r.status, r.forwarded) for r in echo] == [(601, False), (200, True), (418, False)]
    assert len(origin.seen) == 1


async def test_an_unreachable_printer_is_601(oe: OctoEverywhere) -> None:
    async with StandInRelay(f"http://127.0.0.1:{free_port()}") as relay:
        printer = oe.printer(relay.app_connection())
        with pytest.raises(PrinterOfflineError):
            await printer.get_json("/api/version")
        with pytest.raises(PrinterOfflineError):
            async with printer.websocket.connect("/ws"):
                pass


async def test_info_api_origin(printer: PrinterConnection, relay: StandInRelay) -> None:
    info = await printer.app_api.info()
    assert info.is_online
    assert info.limits.max_upload_bytes is None


async def test_restart_keeps_the_port_and_subscriptions_reconnect(
    printer: PrinterConnection, relay: StandInRelay
) -> None:
    url = relay.url
    events: list[SubscriptionEvent] = []
    messages: list[str] = []

    async def hello(ws: Any) -> None:
        await ws.send_str("hello")

    async def until(condition: Any) -> None:
        for _ in range(400):
            if condition():
                return
            await asyncio.sleep(0.025)
        raise AssertionError("timed out")

    def connected(times: int) -> Any:
        return lambda: (
            sub.connects == times
            and sub.state is SubscriptionState.CONNECTED
            and len(messages) == times
        )

    sub = printer.websocket.subscribe(
        "/ws",
        lambda m: messages.append(m.data),
        hello=hello,
        on_state=events.append,
        reconnect=ReconnectPolicy(max_failures=None, base_delay=0.05, max_delay=0.2),
        heartbeat=None,
    )
    try:
        await until(connected(1))
        await relay.stop()
        assert not relay.running
        with pytest.raises(CommunicationError):
            await printer.get_json("/echo")
        await relay.start()
        assert relay.url == url
        await until(connected(2))
        await relay.restart(downtime=0.1)
        await until(connected(3))
        assert messages == ["echo:hello"] * 3  # the hello was sent again each time
        assert (await printer.get_json("/echo"))["method"] == "GET"
    finally:
        await sub.close()
    states = [e.state for e in events]
    assert SubscriptionState.DISCONNECTED in states
    assert [e.reconnected for e in events if e.state is SubscriptionState.CONNECTED] == [
        False,
        True,
        True,
    ]


async def test_https_relay(
    origin: Origin, server_ssl: ssl.SSLContext, tls_session: aiohttp.ClientSession
) -> None:
    async with (
        StandInRelay(origin.url, ssl=server_ssl) as relay,
        OctoEverywhere("relay-tests", session=tls_session, app_api_url=relay.app_api_url) as oe,
    ):
        connection = relay.app_connection()
        assert connection.url.scheme == "https"
        assert connection.allow_insecure_loopback  # loopback, even over https
        printer = oe.printer(connection)
        assert (await printer.get_json("/echo"))["method"] == "GET"
        assert (await printer.app_api.info()).is_online
        async with printer.websocket.connect("/ws") as ws:
            await ws.send_str("tls")
            assert (await ws.receive(timeout=5)).data == "echo:tls"
