"""examples/ha_style_integration.py maps errors by their flags, as the real integration does.

The cases tests/test_examples.py does not cover: 610/611 repair issues, an error that needs a
person (ConfigEntryError), 613 as an idle printer, and the refresh's deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from oe_async.testing import Simulator

from .helpers import load_example

STATUS_PATH = "/octoeverywhere-command-api/status"


ha = load_example("ha_style_integration")


@pytest_asyncio.fixture
async def coord(sim: Simulator) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:
        coordinator = ha.OctoEverywhereCoordinator(
            session,
            {"connection": sim.app_connection().to_dict()},
            app_id=sim.app_id,
            app_api_url=sim.app_api_url,
            allow_insecure_loopback=True,
        )
        yield coordinator
        await coordinator.async_shutdown()


def _plugin_answers(sim: Simulator, plugin_status: int, error: str) -> None:
    body = json.dumps({"Status": plugin_status, "Error": error}).encode()
    sim.fail(200, path=STATUS_PATH, body=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("status", "kind"), [(610, "plugin_update"), (611, "beta_access")], ids=["610", "611"]
)
async def test_plugin_update_and_beta_access_raise_a_repair_issue_and_poll_slowly(
    sim: Simulator, coord: Any, status: int, kind: str
) -> None:
    await coord.async_config_entry_first_refresh()
    sim.fail(status, path=STATUS_PATH)
    await coord.async_refresh()
    assert not ha.PrinterStateSensor(coord).available
    assert coord.repair_kind == kind
    assert coord.repair_issue == coord.last_error  # the error's message
    assert not coord.setup_error
    assert coord.next_refresh == ha.USER_ACTION_INTERVAL
    sim.clear_faults()
    await coord.async_refresh()
    assert coord.repair_kind is None
    assert coord.repair_issue is None
    assert coord.next_refresh == ha.UPDATE_INTERVAL


async def test_plugin_update_at_setup_is_not_ready(sim: Simulator, coord: Any) -> None:
    sim.fail(610, path=STATUS_PATH)
    with pytest.raises(ha.ConfigEntryNotReady, match="plugin needs an update"):
        await coord.async_config_entry_first_refresh()
    assert coord.repair_kind == "plugin_update"


async def test_an_error_that_needs_a_person_is_a_config_entry_error_at_setup(
    sim: Simulator, coord: Any
) -> None:
    _plugin_answers(sim, 789, "Moonraker refused the API key.")
    with pytest.raises(ha.ConfigEntryError, match=r"^Moonraker refused the API key\.$"):
        await coord.async_config_entry_first_refresh()
    assert not coord.reauth_requested
    assert coord.repair_kind is None
    sim.clear_faults()
    await coord.async_refresh()  # while running, polling goes on: fixed, it recovers
    assert ha.PrinterStateSensor(coord).available
    assert not coord.setup_error


async def test_no_active_print_is_an_idle_printer(sim: Simulator, coord: Any) -> None:
    sim.fail(613, path=STATUS_PATH)
    await coord.async_config_entry_first_refresh()  # no exception: set-up succeeds
    sensor = ha.PrinterStateSensor(coord)
    assert sensor.available
    assert sensor.native_value == "idle"
    sim.clear_faults()
    await coord.async_refresh()
    assert sensor.native_value == "printing"
    sim.fail(613, path=STATUS_PATH)
    await coord.async_refresh()
    assert sensor.native_value == "idle"
    assert coord.data.status.platform_version == "OctoPrint 1.10.3"  # kept from the last


async def test_a_refresh_ends_within_its_deadline(
    sim: Simulator, coord: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ha, "UPDATE_TIMEOUT", 0.2)
    sim.state.latency = 5.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    await coord.async_refresh()
    assert loop.time() - start < 3  # the 0.2 s deadline, not the printer's 5 s
    assert not coord.last_update_success
    assert not coord.setup_error  # a RequestTimeoutError is temporary: UpdateFailed
    assert coord.next_refresh == ha.UPDATE_INTERVAL
