"""Diagnostics: useful, and without any secret."""

import json

from oe_async.testing import SECRET_MARKER, Simulator
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.core import HomeAssistant

from .conftest import setup_entry


async def test_diagnostics_hold_no_secret(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    await setup_entry(hass, entry)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)

    assert SECRET_MARKER not in text
    for secret in sim.secrets():
        assert secret not in text
    assert sim.app_token not in text
    assert diagnostics["entry"]["title"] == "Simulated Printer"
    assert diagnostics["entry"]["data"]["connection"]["app_token"] == "**REDACTED**"
    assert diagnostics["last_update_success"] is True
    assert diagnostics["status"]["job"]["state"] == "printing"
    assert diagnostics["info"]["printer_name"] == "Simulated Printer"
    assert "/printer/simulated" not in text  # URLs keep only scheme and host
