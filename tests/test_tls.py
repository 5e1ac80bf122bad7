"""TLS on the owned session (issue 31): a trust store, still verified; the simulator over https.

An app behind a TLS-inspecting proxy, or with a private certificate authority, passes an
``ssl.SSLContext`` that trusts it (``OctoEverywhere(ssl_context=...)``). A context that
would accept any certificate is refused unless ``allow_unverified_tls=True``, as a borrowed
session that skips the checks is. ``Simulator(tls=True)`` serves every origin over https
with a certificate authority made for the run.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from oe_async import (
    AppConnection,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhere,
    RetryPolicy,
)
from oe_async.testing import Simulator, SimulatorCA

STATUS = "/api/printer"


@pytest_asyncio.fixture
async def tls_sim() -> AsyncIterator[Simulator]:
    async with Simulator(tls=True) as sim:
        yield sim


async def test_the_simulator_serves_every_origin_over_https(tls_sim: Simulator) -> None:
    extra = await tls_sim.add_printer()
    assert tls_sim.relay_url.scheme == tls_sim.app_api_url.scheme == "https"
    assert extra.relay_url.scheme == "https"
    assert extra.relay_url.host != tls_sim.relay_url.host  # its own address, own certificate
    async with tls_sim.client() as oe:  # trusts the run's certificate authority
        assert not oe.allow_insecure_loopback
        for conn in (tls_sim.app_connection(), extra.app_connection()):
            printer = oe.printer(conn)
            assert await printer.get_json(STATUS)
            assert (await printer.app_api.info()).printer_name == conn.printer_name


async def test_the_system_trust_store_refuses_the_test_authority(tls_sim: Simulator) -> None:
    async with OctoEverywhere(
        tls_sim.app_id, app_api_url=tls_sim.app_api_url, retry=RetryPolicy.never()
    ) as oe:
        with pytest.raises(CommunicationError, match="certificate could not be verified"):
            await oe.printer(tls_sim.app_connection()).get_json(STATUS)
    assert not tls_sim.requests  # nothing, credentials least of all, reached the relay


async def test_a_trust_store_for_another_authority_is_refused(tls_sim: Simulator) -> None:
    other = await asyncio.get_running_loop().run_in_executor(None, SimulatorCA)
    async with tls_sim.client(ssl_context=other.client_context(), retry=RetryPolicy.never()) as oe:
        with pytest.raises(CommunicationError, match="certificate could not be verified"):
            await oe.printer(tls_sim.app_connection()).get_json(STATUS)
    assert not tls_sim.requests


def _unverified(kind: str, ca: SimulatorCA) -> ssl.SSLContext:
    context = ca.client_context()
    context.check_hostname = False
    if kind == "CERT_NONE":
        context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize("kind", ["CERT_NONE", "no host name check"])
async def test_an_unverified_trust_store_needs_the_explicit_opt_in(
    tls_sim: Simulator, kind: str
) -> None:
    assert tls_sim.ca is not None
    context = _unverified(kind, tls_sim.ca)
    with pytest.raises(InvalidArgumentError, match="does not verify TLS certificates"):
        OctoEverywhere("app", ssl_context=context)
    async with tls_sim.client(ssl_context=context, allow_unverified_tls=True) as oe:
        assert await oe.printer(tls_sim.app_connection()).get_json(STATUS)


async def test_bad_trust_stores_get_a_clear_error() -> None:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(InvalidArgumentError, match="server-side context"):
        OctoEverywhere("app", ssl_context=server_side)
    with pytest.raises(InvalidArgumentError, match=r"ssl\.SSLContext"):
        OctoEverywhere("app", ssl_context="/etc/ssl/certs/ca.pem")  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidArgumentError, match=r"TCPConnector\(ssl=context\)"):
            OctoEverywhere("app", session=session, ssl_context=ssl.create_default_context())


async def test_tls_and_ssl_are_one_choice(tls_sim: Simulator) -> None:
    with pytest.raises(ValueError, match="not both"):
        Simulator(tls=True, ssl=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    assert tls_sim.ca is not None
    assert tls_sim.ca.cert_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert Simulator().ca is None


async def test_tls_without_trustme_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # import trustme now fails
    with pytest.raises(ImportError, match=r"needs trustme.*oe-async\[test\]"):
        async with Simulator(tls=True):
            pass


async def test_the_standalone_simulator_announces_its_authority() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oe_async.testing", "--tls", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        announced = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert announced["relay_url"].startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cadata=announced["ca_pem"])
        async with OctoEverywhere(
            announced["app_id"], app_api_url=announced["app_api_url"], ssl_context=context
        ) as oe:
            printer = oe.printer(AppConnection.from_dict(announced["app_connection"]))
            assert await printer.get_json(STATUS)
    finally:
        proc.terminate()
        await proc.wait()
