"""pytest fixtures for the simulator (needs pytest-asyncio).

Enable in your ``conftest.py``::

    pytest_plugins = ["oe_async.testing.pytest_plugin"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from oe_async.client import OctoEverywhere
from oe_async.connection import PrinterConnection

from .simulator import Simulator


@pytest_asyncio.fixture
async def oe_simulator() -> AsyncIterator[Simulator]:
    """A running :class:`Simulator` on 127.0.0.1, stopped after the test."""
    async with Simulator() as sim:
        yield sim


@pytest_asyncio.fixture
async def oe_client(oe_simulator: Simulator) -> AsyncIterator[OctoEverywhere]:
    """An :class:`OctoEverywhere` client (owning its session) pointed at the simulator."""
    async with oe_simulator.client() as client:
        yield client


@pytest_asyncio.fixture
async def oe_printer(oe_client: OctoEverywhere, oe_simulator: Simulator) -> PrinterConnection:
    """A :class:`PrinterConnection` to the simulator's printer."""
    return oe_client.printer(oe_simulator.app_connection())
