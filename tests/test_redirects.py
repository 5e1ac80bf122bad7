"""Redirect matrix: credentials never reach a foreign origin, and survive same-origin hops."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from oe_async import PrinterConnection
from oe_async.testing import Simulator

from .helpers import RecordingServer

STATUSES = [301, 302, 303, 307, 308]
PRINTER_KEY = "printer-api-key-0451"


@pytest_asyncio.fixture
async def tls_sim(server_ssl: ssl.SSLContext) -> AsyncIterator[Simulator]:
    async with Simulator(ssl=server_ssl) as sim:
        yield sim


@pytest_asyncio.fixture
async def tls_printer(
    tls_sim: Simulator, tls_session: aiohttp.ClientSession
) -> AsyncIterator[PrinterConnection]:
    async with tls_sim.client(session=tls_session) as oe:
        yield oe.printer(tls_sim.app_connection(), headers={"X-Api-Key": PRINTER_KEY})


@pytest_asyncio.fixture(params=["other-host", "other-port", "https-to-http"])
async def elsewhere(
    request: pytest.FixtureRequest, tls_sim: Simulator, server_ssl: ssl.SSLContext
) -> AsyncIterator[RecordingServer]:
    relay_port = tls_sim.relay_url.port
    assert relay_port is not None
    kwargs: dict[str, object] = {
        "other-host": {"host": "127.0.0.2", "port": relay_port, "ssl_context": server_ssl},
        "other-port": {"host": "127.0.0.1", "ssl_context": server_ssl},
        "https-to-http": {"host": "127.0.0.1"},
    }[request.param]
    async with RecordingServer(**kwargs) as server:  # type: ignore[arg-type]
        yield server


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_foreign_origin_receives_no_credentials(
    tls_sim: Simulator,
    tls_printer: PrinterConnection,
    elsewhere: RecordingServer,
    status: int,
    method: str,
) -> None:
    tls_sim.redirect("/go", elsewhere.url / "landing", status=status)
    async with tls_printer.request(
        method, "/go", data=b"payload", headers={"X-Api-Key": PRINTER_KEY}, raise_for_status=False
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["foreign"] is True
    assert len(elsewhere.seen) == 1, "the redirect was followed"
    assert elsewhere.secret_headers_seen() == []
    # Positive control: the relay itself did get the credentials on the first hop.
    first = tls_sim.requests_to("relay", "/go")[0]
    assert first.authorization == tls_sim.auth.header_value
    assert first.headers["X-Api-Key"] == PRINTER_KEY


async def test_app_api_token_does_not_follow_a_redirect(
    tls_sim: Simulator, tls_printer: PrinterConnection, elsewhere: RecordingServer
) -> None:
    tls_sim.redirect("/api/appconnection/info", elsewhere.url / "landing", origin="app_api")
    await tls_printer.app_api.info()
    assert tls_sim.requests_to("app_api")[0].headers["AppToken"] == tls_sim.app_token
    assert len(elsewhere.seen) == 1
    assert elsewhere.secret_headers_seen() == []


@pytest.mark.parametrize("status", STATUSES)
async def test_same_origin_redirects_keep_credentials_on_every_hop(
    tls_sim: Simulator, tls_printer: PrinterConnection, status: int
) -> None:
    tls_sim.redirect("/hop1", "/hop2", status=status)
    tls_sim.redirect("/hop2", str(tls_sim.relay_url / "api" / "version"), status=status)
    body = await tls_printer.get_json("/hop1")
    assert body["api"] == "0.1"
    hops = [r for r in tls_sim.requests if r.origin == "relay"]
    assert [r.path for r in hops] == ["/hop1", "/hop2", "/api/version"]
    for hop in hops:
        assert hop.authorization == tls_sim.auth.header_value
        assert hop.headers["X-Api-Key"] == PRINTER_KEY
