"""Shared fixtures: the public simulator plugin plus TLS material and a foreign origin."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
import trustme
from blockbuster import blockbuster_ctx
from hypothesis import settings

from oe_async import OctoEverywhere, PrinterConnection, RetryPolicy
from oe_async.testing import Simulator

from .helpers import RecordingServer

pytest_plugins = ["oe_async.testing.pytest_plugin"]

# Hypothesis profiles: "quick" in make test; "fuzz" (>= 100,000 examples per property) on
# demand with `pytest --hypothesis-profile=fuzz -m fuzz` or `make fuzz`.
settings.register_profile("quick", max_examples=150, deadline=None)
settings.register_profile("fuzz", max_examples=100_000, deadline=None)
settings.load_profile("quick")


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[None]:
    """Fail any test whose event-loop thread makes a blocking call (open, stat, read, write,
    listdir, sleep...) from oe_async (library, simulator, CLI) or from the tests themselves:
    the calls Home Assistant flags. Executor threads are allowed to block."""
    with blockbuster_ctx(["oe_async", "tests"]):
        yield


#: Retries without waiting, so tests that exercise them stay fast.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


@pytest_asyncio.fixture
async def sim(oe_simulator: Simulator) -> Simulator:
    return oe_simulator


@pytest_asyncio.fixture
async def oe(sim: Simulator) -> AsyncIterator[OctoEverywhere]:
    async with sim.client(retry=FAST_RETRY) as client:
        yield client


@pytest_asyncio.fixture
async def printer(oe: OctoEverywhere, sim: Simulator) -> PrinterConnection:
    return oe.printer(sim.app_connection())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest_asyncio.fixture
async def tls_session(client_ssl: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that trusts the test CA (borrowed by clients under test)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl)) as s:
        yield s


@pytest_asyncio.fixture
async def foreign() -> AsyncIterator[RecordingServer]:
    """An unrelated origin on loopback that records what reaches it."""
    async with RecordingServer() as server:
        yield server
