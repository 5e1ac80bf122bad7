"""The real-OctoPrint integration suite: a StandInRelay in front of a real OctoPrint.

``scripts/octoprint-integration`` (``make integration``) starts OctoPrint 1.11 with its
virtual printer and runs this folder with:

* ``OE_OCTOPRINT_URL``: OctoPrint's base URL on loopback;
* ``OE_OCTOPRINT_API_KEY``: an application key of an admin user;
* ``OE_OCTOPRINT_USER``: that user's name.

Without ``OE_OCTOPRINT_URL`` every test here is skipped at collection, so a plain
``make test`` only reports them as skipped. The root conftest's guards still apply:
blocking calls on the event loop and leaked relay secrets fail a test here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from yarl import URL

from oe_async import OctoEverywhere, OctoEverywhereError, PrinterConnection
from oe_async.testing.relay import StandInRelay

from .support import API_KEY, OCTOPRINT_URL, client_for, wait_for

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if OCTOPRINT_URL:
        return
    skip = pytest.mark.skip(
        reason="real OctoPrint needed: run scripts/octoprint-integration (make integration)"
    )
    for item in items:
        if item.path.parent == HERE:  # mqtt/ has real peers of its own (its conftest)
            item.add_marker(skip)


@pytest.fixture
def octoprint_url() -> URL:
    return URL(OCTOPRINT_URL)


@pytest_asyncio.fixture
async def relay(octoprint_url: URL) -> AsyncIterator[StandInRelay]:
    async with StandInRelay(octoprint_url) as stand_in:
        yield stand_in


@pytest_asyncio.fixture
async def oe(relay: StandInRelay) -> AsyncIterator[OctoEverywhere]:
    async with client_for(relay) as client:
        yield client


@pytest_asyncio.fixture
async def printer(oe: OctoEverywhere, relay: StandInRelay) -> PrinterConnection:
    return oe.printer(relay.app_connection(octoprint_api_key=API_KEY))


@pytest_asyncio.fixture
async def operational(printer: PrinterConnection) -> PrinterConnection:
    """The virtual printer connected and Operational (connects it when needed)."""
    state = await printer.get_json("/api/connection")
    if state["current"]["state"] != "Operational":
        answer = await printer.post_json(
            "/api/connection", {"command": "connect", "port": "VIRTUAL", "baudrate": 115200}
        )
        assert answer is None  # 204 No Content

    async def ready() -> bool:
        current = await printer.get_json("/api/connection")
        return bool(current["current"]["state"] == "Operational")

    await wait_for(ready, what="the virtual printer to be Operational")
    return printer


@pytest_asyncio.fixture
async def remote_files(printer: PrinterConnection) -> AsyncIterator[list[str]]:
    """Names of files to delete from OctoPrint's local storage after the test."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(OctoEverywhereError):  # already deleted by the test
            async with printer.request("DELETE", f"/api/files/local/{name}"):
                pass
