"""Security round 3 (issue 19) and the round-2 findings that live in the funnel (issue 15).

Each test fails on the code before the fix and runs against real loopback servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from oe_async import (
    AppConnectionRevokedError,
    OctoEverywhereError,
    PrinterHTTPError,
    RelayError,
)
from oe_async.testing import Fault, Simulator


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
