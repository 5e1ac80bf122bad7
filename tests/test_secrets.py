"""Secrets never show up in reprs, exception messages, tracebacks or DEBUG logs.

Runs against a production-shaped setup: https, a unique relay subdomain
(``app-<secret>.octoeverywhere.com``) and an App API host name, all resolved to 127.0.0.1.
"""

from __future__ import annotations

import logging
import socket
import ssl
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import trustme
from yarl import URL

import oe_async
from oe_async import AppConnection, BasicAuth, OctoEverywhere, RetryPolicy
from oe_async.testing import LoopbackResolver, Simulator

SUBDOMAIN = "app-5ecre75ubd0ma1n"
PASSWORD = "Pa55-w0rd-RECOGNISABLE"
USERNAME = "user-RECOGNISABLE"
APP_TOKEN = "AppT0ken-RECOGNISABLE"
API_KEY = "0ctoKey-RECOGNISABLE"
SECRETS = [
    SUBDOMAIN,
    PASSWORD,
    USERNAME,
    APP_TOKEN,
    API_KEY,
    BasicAuth(USERNAME, PASSWORD).header_value,
]


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts for *.octoeverywhere.com (made outside the event loop)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("*.octoeverywhere.com", "octoeverywhere.com").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


@pytest_asyncio.fixture
async def world(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> AsyncIterator[tuple[Simulator, OctoEverywhere, AppConnection]]:
    server_ctx, client_ctx = tls_contexts
    async with Simulator(ssl=server_ctx) as sim:
        sim.basic_auth = BasicAuth(USERNAME, PASSWORD)
        sim.app_token = APP_TOKEN
        relay = URL(f"https://{SUBDOMAIN}.octoeverywhere.com:{sim.relay_url.port}")
        api = URL(f"https://octoeverywhere.com:{sim.app_api_url.port}")
        connector = aiohttp.TCPConnector(resolver=LoopbackResolver(), ssl=client_ctx)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            sim.client(
                session=session, app_api_url=api, retry=RetryPolicy(attempts=2, base_delay=0)
            ) as oe,
        ):
            conn = sim.app_connection(url=relay, octoprint_api_key=API_KEY, id=SUBDOMAIN)
            yield sim, oe, conn


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}: {text!r}"


def assert_error_clean(err: BaseException) -> None:
    assert_clean(str(err), "str(exception)")
    assert_clean(repr(err), "repr(exception)")
    assert_clean("".join(traceback.format_exception(err)), "formatted traceback")


async def test_secrets_stay_out_of_everything(
    world: tuple[Simulator, OctoEverywhere, AppConnection], caplog: pytest.LogCaptureFixture
) -> None:
    sim, oe, conn = world
    caplog.set_level(logging.DEBUG)
    printer = oe.printer(conn)

    # The happy path works on the production-shaped names.
    info = await printer.app_api.info()
    assert (await printer.get_json("/api/version"))["api"] == "0.1"
    assert sim.requests_to("relay")[0].headers["X-Api-Key"] == API_KEY
    for obj in (
        oe,
        printer,
        conn,
        conn.auth,
        info,
        printer.app_api.limits,
        await printer.app_api.create_live_link(2),
    ):
        assert_clean(repr(obj), f"repr({type(obj).__name__})")
        assert_clean(str(obj), f"str({type(obj).__name__})")

    errors: list[BaseException] = []

    async def collect(coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except oe_async.OctoEverywhereError as err:
            errors.append(err)
        else:
            pytest.fail("expected an error")

    for status in range(600, 615):
        sim.fail(status, path="/api/job", times=2)
        await collect(printer.get_json("/api/job"))
        sim.fail(status, origin="app_api", times=2)
        await collect(printer.app_api.info())
    sim.fail(404, path="/api/job", body=b"not here")
    await collect(printer.get_json("/api/job"))
    sim.clear_faults()

    sim.state.latency = 1.0
    await collect(printer.get_json("/api/version", timeout=0.1))
    sim.state.latency = 0

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    dead = oe.printer(
        AppConnection(
            url=f"https://{SUBDOMAIN}.octoeverywhere.com:{closed_port}",
            auth=conn.auth,
            app_token=APP_TOKEN,
        )
    )
    await collect(dead.get_json("/api/version"))

    wrong = oe.printer(sim.app_connection(url=conn.url, auth=BasicAuth(USERNAME, PASSWORD + "x")))
    await collect(wrong.get_json("/api/version"))

    sim.fail(
        200, origin="app_api", body=b'{"LastConnectionTimeUtc": "' + APP_TOKEN.encode() + b'"}'
    )
    await collect(printer.app_api.info())
    sim.clear_faults()

    await collect(printer.get_json(f"https://{SUBDOMAIN}.example.com/"))
    with pytest.raises(oe_async.InvalidArgumentError) as bad_url:
        AppConnection(
            url=f"http://{SUBDOMAIN}.octoeverywhere.com", auth=conn.auth, app_token=APP_TOKEN
        )
    errors.append(bad_url.value)
    with pytest.raises(oe_async.PortalError) as portal:
        AppConnection.from_completion_url(
            sim.completion_url(url=f"http://{SUBDOMAIN}.octoeverywhere.com", appApiToken="")
        )
    errors.append(portal.value)
    with pytest.raises(oe_async.InvalidArgumentError) as stored:
        AppConnection.from_dict({**conn.to_dict(), "app_token": APP_TOKEN + " space"})
    errors.append(stored.value)

    assert len(errors) >= 36
    for err in errors:
        assert_error_clean(err)
    for record in caplog.records:
        assert_clean(record.getMessage(), "a log record")
    assert any(r.name.startswith("oe_async") for r in caplog.records), "DEBUG logging was exercised"
