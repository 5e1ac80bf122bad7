"""Security round 3 (issue 19) and the round-2 findings that live in the funnel (issue 15).

Each test fails on the code before the fix and runs against real loopback servers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from oe_async import (
    AppConnection,
    AppConnectionRevokedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterConnection,
    PrinterHTTPError,
    RelayError,
    RetryPolicy,
    UnexpectedResponseError,
)
from oe_async._lan import is_local_host, lan_url_from_ip
from oe_async.testing import Fault, Simulator

from .helpers import eventually


@asynccontextmanager
async def answering(status: int) -> AsyncIterator[URL]:
    """A plain-http "LAN device" answering ``status`` to everything (WebSocket upgrades too)."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="not a printer")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield URL(f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- 19.3: 6xx only from the relay


async def test_a_lan_device_answering_604_is_not_a_revocation(sim: Simulator) -> None:
    async with answering(604) as lan, sim.client() as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, route="local")
        with pytest.raises(PrinterHTTPError) as info:
            await printer.get_json("/api/printer")
        assert info.value.status == 604
        assert not isinstance(info.value, RelayError)
        with pytest.raises(PrinterHTTPError) as ws_info:
            async with printer.websocket.connect("/sockjs/websocket"):
                pass
        assert not isinstance(ws_info.value, RelayError)


async def test_the_relay_answering_604_still_is(sim: Simulator) -> None:
    sim.state.faults.append(Fault(status=604, path="/api/printer"))
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        with pytest.raises(AppConnectionRevokedError):
            await printer.get_json("/api/printer")


# ---------------------------------------------------------------- 15.6: no secret in the chain


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
    return seen


async def test_websocket_handshake_errors_hold_no_secret(sim: Simulator) -> None:
    sim.state.faults.append(Fault(status=403, path="/sockjs/websocket"))
    conn = sim.app_connection(octoprint_api_key="api-key-canary-0123456789")
    async with sim.client() as oe:
        printer = oe.printer(conn)
        with pytest.raises(OctoEverywhereError) as info:
            async with printer.websocket.connect("/sockjs/websocket"):
                pass
    secrets = [conn.auth.header_value, "api-key-canary-0123456789", str(conn.url)]
    chain = _chain(info.value)
    assert len(chain) == 1, [type(e).__name__ for e in chain]  # nothing of aiohttp's behind it
    for err in chain:
        text = repr(err) + repr(vars(err)) + repr(err.args)
        for secret in secrets:
            assert secret not in text


# ---------------------------------------------------------------- 19.5: WebSockets and proxies


class RecordingProxy:
    """A forward "proxy" on loopback that records each request line and answers 502."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.url = URL()
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        self.lines.append(line.decode("latin-1").strip())
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = URL(f"http://127.0.0.1:{port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_websocket_handshakes_take_the_borrowed_sessions_proxy(sim: Simulator) -> None:
    async with (
        RecordingProxy() as proxy,
        aiohttp.ClientSession(proxy=proxy.url) as session,
        sim.client(session=session) as oe,
    ):
        printer = oe.printer(sim.app_connection())
        with pytest.raises(OctoEverywhereError):
            await printer.get_json("/api/printer")
        with pytest.raises(OctoEverywhereError):
            async with printer.websocket.connect("/sockjs/websocket"):
                pass
    assert any("/api/printer" in line for line in proxy.lines), proxy.lines
    assert any("/sockjs/websocket" in line for line in proxy.lines), proxy.lines
    assert not [r for r in sim.requests if r.path.endswith("/sockjs/websocket")]


# ---------------------------------------------------------------- 15.7: cookies


async def test_the_owned_session_keeps_no_cookies(sim: Simulator) -> None:
    sim.state.faults.append(
        Fault(
            status=200,
            path="/api/printer",
            headers={"Set-Cookie": "relay=1; Domain=127.0.0.1; Path=/", "Content-Type": "x/y"},
            body=b"{}",
        )
    )
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        async with printer.request("GET", "/api/printer") as resp:
            assert resp.status == 200
        await printer.app_api.info()
        assert len(oe.session.cookie_jar) == 0
    sent = [r for r in sim.requests if "Cookie" in r.headers]
    assert not sent


# ---------------------------------------------------------------- 15.3 / 19.4: local_ip


@pytest.mark.parametrize("bad", ["host:99999", "host:abc", "1.2.3.4]", "a/b", "[::1"])
async def test_a_malformed_local_ip_is_an_argument_error(sim: Simulator, bad: str) -> None:
    async with sim.client() as oe:
        with pytest.raises(InvalidArgumentError, match=r"AppConnection\.local_ip"):
            oe.printer(sim.app_connection(local_ip=bad))


@pytest.mark.parametrize("public", ["8.8.8.8", "printer.example.com", "2001:4860::8888"])
async def test_a_public_local_ip_is_not_used_as_the_lan(
    sim: Simulator, public: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection(local_ip=public))
        assert printer.lan_url is None
        assert printer.route_policy.value == "relay"
        assert isinstance(await printer.get_json("/api/printer"), dict)
    assert "not a private, link-local or loopback address" in caplog.text


@pytest.mark.parametrize(
    "value", ["192.168.1.20", "10.0.0.7", "169.254.3.4", "fe80::1", "voron.local"]
)
def test_local_addresses_are_accepted(value: str) -> None:
    assert is_local_host(lan_url_from_ip(value).host)


@pytest.mark.parametrize("bad", ["host:99999", "1.2.3.4]", "8.8.8.8"])
async def test_info_survives_a_bad_printer_local_ip(sim: Simulator, bad: str) -> None:
    sim.state.local_ip = bad
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection(local_ip="127.0.0.9"))
        info = await printer.app_api.info()
        assert info.local_ip == bad  # reported as given...
        assert printer.lan_url == URL("http://127.0.0.9/")  # ...but not followed
        await printer.app_api.info()  # logged once, no error either time


def test_the_portals_public_local_ip_is_dropped(sim: Simulator) -> None:
    url = sim.completion_url(printerLastKnownLocalIp="203.0.113.9")
    conn = AppConnection.from_completion_url(url, allow_insecure_loopback=True)
    assert conn.local_ip is None
    url = sim.completion_url(printerLastKnownLocalIp="192.168.1.20")
    assert AppConnection.from_completion_url(url, allow_insecure_loopback=True).local_ip == (
        "192.168.1.20"
    )


# ---------------------------------------------------------------- 15.12 / 15.13 / 17.3 / 16.9


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/downloads/files/local/a#1.gcode", "'#'"),
        ("/api/files/local/a\\b", "backslash"),
        ("http:\\\\evil.example/x", "backslash"),
        (URL("/x#frag"), "'#'"),
    ],
)
async def test_a_path_is_never_shortened_silently(
    sim: Simulator, path: str | URL, what: str
) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        before = len(sim.requests)
        with pytest.raises(InvalidArgumentError, match=what):
            async with printer.request("DELETE", path):
                pass
        assert len(sim.requests) == before  # nothing was sent


async def test_an_encoded_hash_reaches_the_printer(sim: Simulator) -> None:
    sim.files.add("a#1.gcode", b"G28\n")
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        async with printer.files.download("/downloads/files/local/a%231.gcode") as chunks:
            assert b"".join([c async for c in chunks]) == b"G28\n"


async def test_a_printers_own_absolute_url_is_followed_on_the_route(sim: Simulator) -> None:
    sim.files.add("x.gcode", b"G1\n")
    ref = "http://127.0.0.1:5000/downloads/files/local/x.gcode?v=1"
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        assert printer.path_of(ref) == "/downloads/files/local/x.gcode?v=1"
        async with printer.files.download(printer.path_of(ref)) as chunks:
            assert b"".join([c async for c in chunks]) == b"G1\n"
    for bad in ("ftp://h/x", "http://h/x#y", "mailto:a@b"):
        with pytest.raises(InvalidArgumentError):
            PrinterConnection.path_of(bad)


@pytest.fixture(scope="module")
def wrong_host_ssl(ca: trustme.CA) -> ssl.SSLContext:
    """A server context whose certificate (from the trusted CA) names another host."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(context)
    return context


async def test_tls_and_dns_failures_say_what_happened(
    sim: Simulator, wrong_host_ssl: ssl.SSLContext, tls_session: aiohttp.ClientSession
) -> None:
    async with (
        Simulator(ssl=wrong_host_ssl) as tls_sim,
        tls_sim.client(session=tls_session, retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(tls_sim.app_connection())
        with pytest.raises(CommunicationError, match="certificate could not be verified"):
            await printer.get_json("/api/printer")
    # A resolver that knows no name: nothing leaves the machine, not even a DNS query.
    connector = aiohttp.TCPConnector(resolver=NoNames())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        sim.client(session=session, retry=RetryPolicy.never()) as oe,
    ):
        conn = sim.app_connection(
            url="https://app-nowhere.octoeverywhere.com", allow_insecure_loopback=False
        )
        with pytest.raises(CommunicationError, match="cannot resolve the host name"):
            await oe.printer(conn).get_json("/api/printer")


class NoNames(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


# ---------------------------------------------------------------- 19.2: the LAN probe


@pytest.mark.parametrize("status", [502, 200])
async def test_the_probe_wants_the_printer_not_any_answer(sim: Simulator, status: int) -> None:
    """A proxy's 502, or another device now at the stored IP, keeps the route on the relay."""
    async with answering(status) as lan, sim.client() as oe:
        printer = oe.printer(
            sim.app_connection(), lan_url=lan, route="prefer_local", headers={"X-Api-Key": "k"}
        )
        assert isinstance(await printer.get_json("/api/printer"), dict)
        assert printer.route.value == "relay"


async def test_the_real_printer_on_the_lan_is_recognised(sim: Simulator) -> None:
    lan = await sim.start_lan()
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, route="prefer_local")
        await printer.get_json("/api/printer")
        assert printer.route.value == "lan"


async def test_a_lan_that_keeps_failing_is_given_up(sim: Simulator) -> None:
    lan = await sim.start_lan()
    async with sim.client(retry=RetryPolicy.never()) as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, route="prefer_local")
        await printer.get_json("/api/printer")
        assert printer.route.value == "lan"
        sim.state.faults.append(Fault(status=502, origin="lan", path="/api/printer"))
        for _ in range(3):
            with pytest.raises(PrinterHTTPError):
                await printer.get_json("/api/printer")
        assert printer.route.value == "relay"
        assert isinstance(await printer.get_json("/api/printer"), dict)  # through the relay


# ---------------------------------------------------------------- 15.5 (HTTP part)


async def test_deeply_nested_json_is_a_typed_error(sim: Simulator) -> None:
    nested = b"[" * 200_000 + b"]" * 200_000
    sim.state.faults.append(
        Fault(
            status=200,
            path="/api/printer",
            headers={"Content-Type": "application/json"},
            body=nested,
        )
    )
    sim.state.faults.append(
        Fault(
            status=200,
            path="/api/appconnection/info",
            headers={"Content-Type": "application/json"},
            body=nested,
        )
    )
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        with pytest.raises(UnexpectedResponseError, match="nested too deeply"):
            await printer.get_json("/api/printer")
        with pytest.raises(UnexpectedResponseError, match="nested too deeply"):
            await printer.app_api.info()


# ---------------------------------------------------------------- 19.10: stray idle responses


class StrayAnswers:
    """A keep-alive HTTP server that sends an unsolicited response on each idle connection."""

    def __init__(self) -> None:
        self.url = URL()
        self.served = 0
        self.strays = 0  # unsolicited answers written
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                self.served += 1
                body = f'{{"n": {self.served}}}'.encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                await asyncio.sleep(0.05)  # the connection is idle in the client's pool now
                stray = b'{"stray": true}'
                writer.write(
                    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(stray)}\r\n\r\n".encode()
                    + stray
                )
                await writer.drain()
                self.strays += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> StrayAnswers:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = URL(f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def test_an_unsolicited_answer_on_an_idle_connection_is_never_read(
    sim: Simulator,
) -> None:
    async with StrayAnswers() as server, sim.client(retry=RetryPolicy.never()) as oe:
        printer = oe.printer(sim.app_connection(url=server.url))
        answers = []
        for n in range(1, 5):
            answers.append(await printer.get_json("/api/printer"))
            await eventually(lambda n=n: server.strays == n, "the stray answer is written")
            # It is in the client's socket buffer now: any pass of the loop that is not this
            # task's next step reads it, before the next request.
            await asyncio.sleep(0.05)
    assert answers == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ({"X-Note": "a\r\nInjected: 1"}, "control characters"),
        ({"Bad Name": "x"}, "invalid header name"),
        ({"Authorization": "Basic eA=="}, "managed by oe_async"),
    ],
)
async def test_bad_per_request_headers_send_nothing(
    sim: Simulator, headers: dict[str, str], what: str
) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        before = len(sim.requests)
        with pytest.raises(InvalidArgumentError, match=what):
            await printer.get_json("/api/printer", headers=headers)
        assert len(sim.requests) == before


async def test_websocket_handshakes_follow_trust_env_proxies(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", str(proxy.url))
        monkeypatch.setenv("NO_PROXY", "")
        async with (
            aiohttp.ClientSession(trust_env=True) as session,
            sim.client(session=session) as oe,
        ):
            printer = oe.printer(sim.app_connection())
            with pytest.raises(OctoEverywhereError):
                await printer.get_json("/api/printer")
            with pytest.raises(OctoEverywhereError):
                async with printer.websocket.connect("/sockjs/websocket"):
                    pass
    assert any("/api/printer" in line for line in proxy.lines), proxy.lines
    assert any("/sockjs/websocket" in line for line in proxy.lines), proxy.lines


# ---------------------------------------------------------------- the funnel's direct path


async def test_session_default_secret_headers_are_still_stripped(sim: Simulator) -> None:
    """A borrowed session's default secret header takes the middleware path, never out."""
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": "session-default-key"}) as session,
        sim.client(session=session) as oe,
    ):
        printer = oe.printer(sim.app_connection())
        await printer.app_api.info()
        await printer.get_json("/api/printer")
    to_app_api = [r for r in sim.requests if r.origin == "app_api"]
    assert to_app_api
    assert all("X-Api-Key" not in r.headers for r in to_app_api)


async def test_a_redirect_from_the_direct_path_is_followed_hop_by_hop(sim: Simulator) -> None:
    async with RecordingProxy() as elsewhere, sim.client() as oe:
        sim.redirect("/api/printer", str(elsewhere.url) + "/landing", status=302)
        printer = oe.printer(sim.app_connection())
        with pytest.raises(OctoEverywhereError):
            await printer.get_json("/api/printer")
    relay_hits = [r for r in sim.requests if r.path == "/api/printer"]
    assert len(relay_hits) == 1  # sent once, not resent
    assert elsewhere.lines  # the redirect was followed, without the relay credentials:
