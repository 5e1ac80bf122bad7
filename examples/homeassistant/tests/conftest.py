"""Fixtures: Home Assistant's harness and oe_async's simulator on 127.0.0.1."""

from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import patch

from oe_async import ConnectionInfo
from oe_async.testing import Simulator
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.octoeverywhere import api
from custom_components.octoeverywhere.config_flow import printer_unique_id
from custom_components.octoeverywhere.const import APP_ID, CONF_CONNECTION, DOMAIN
from homeassistant.core import HomeAssistant

#: The hash of the simulator's UserFacingPrinterUrl (the printer's unique id).
SIM_PRINTER_URL = "https://octoeverywhere.com/printer/simulated"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Iterator[None]:
    """Load custom_components/octoeverywhere in every test."""
    return


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncIterator[Simulator]:
    """The OctoEverywhere simulator, with the integration's client pointed at it.

    ``socket_enabled`` lets the simulator listen; Home Assistant's harness still refuses
    any connection that is not to 127.0.0.1.
    """
    async with Simulator(app_id=APP_ID) as simulator:
        options: dict[str, Any] = {
            "app_api_url": simulator.app_api_url,
            "allow_insecure_loopback": True,
        }
        with patch.dict(api.CLIENT_OPTIONS, options):
            yield simulator


@pytest.fixture
def unique_id() -> str:
    """The config entry's unique id for the simulator's printer."""
    uid = printer_unique_id(ConnectionInfo(user_facing_url=SIM_PRINTER_URL))
    assert uid is not None
    return uid


@pytest.fixture
def entry(hass: HomeAssistant, sim: Simulator, unique_id: str) -> MockConfigEntry:
    """A config entry for the simulator's printer (added, not set up)."""
    config_entry = MockConfigEntry(
        domain=DOMAIN,
        title=sim.state.printer_name,
        unique_id=unique_id,
        data={CONF_CONNECTION: sim.app_connection().to_dict()},
    )
    config_entry.add_to_hass(hass)
    return config_entry


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the entry up and wait for everything it started."""
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
