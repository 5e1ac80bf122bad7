"""MQTT against real peers: Debian's mosquitto and the plugin's real mqttmux proxy.

``make integration-mqtt`` installs mosquitto when it is missing and runs this folder with
``OE_MQTT_INTEGRATION=1``. Without that
variable every test here is skipped, so ``make test`` only lists them as skipped; the tests
of the real proxy are skipped with a message when the plugin's source is absent
(``OE_PLUGIN_MIRROR``, a bare git directory, never committed).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from oe_async import AppConnection, BasicAuth, OctoEverywhere, PrinterConnection
from oe_async.testing import SECRET_MARKER

from .support import Mosquitto, MuxRelay, extract_plugin, mosquitto_missing

HERE = Path(__file__).resolve().parent
ENABLED = os.environ.get("OE_MQTT_INTEGRATION") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = (
        None if ENABLED else "real MQTT peers: run make integration-mqtt (OE_MQTT_INTEGRATION=1)"
    )
    reason = reason or mosquitto_missing()
    if reason is None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the session (a test that stops it starts it again)."""
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), trustme.CA())
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("plugin")
    problem = extract_plugin(dest)
    if problem is not None:
        pytest.skip(problem)
    return dest


@pytest.fixture
def serial() -> str:
    return f"01P00A-{SECRET_MARKER}-{secrets.token_hex(3)}"


@pytest_asyncio.fixture
async def mux_relay(plugin_dir: Path, broker: Mosquitto, serial: str) -> AsyncIterator[MuxRelay]:
    relay = MuxRelay(plugin_dir, broker, serial)
    await relay.start()
    try:
        async with asyncio.timeout(30):
            while not relay.upstream_connected():
                await asyncio.sleep(0.05)
        yield relay
    finally:
        await relay.close()


@pytest_asyncio.fixture
async def oe() -> AsyncIterator[OctoEverywhere]:
    async with OctoEverywhere("oe-async-mqtt-integration") as client:
        yield client


@pytest_asyncio.fixture
async def relay_printer(oe: OctoEverywhere, mux_relay: MuxRelay) -> PrinterConnection:
    """A printer whose App Connection URL is the relay in front of the real proxy."""
    return oe.printer(
        AppConnection(url=mux_relay.url, auth=mux_relay.auth, allow_insecure_loopback=True)
    )


@pytest_asyncio.fixture
async def direct(oe: OctoEverywhere, broker: Mosquitto) -> PrinterConnection:
    """mosquitto's own WebSocket listener, reached directly (also the printer's side)."""
    auth = BasicAuth("mosquitto-ignores", "this-header")
    return oe.printer(AppConnection(url=broker.ws_url, auth=auth, allow_insecure_loopback=True))
