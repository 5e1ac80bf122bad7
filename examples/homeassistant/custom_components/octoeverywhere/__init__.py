"""The OctoEverywhere integration: 3D printers reached through OctoEverywhere App Connections."""

from oe_async import AppConnection, InvalidArgumentError

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed

from .api import async_create_client
from .const import CONF_CONNECTION, DOMAIN
from .coordinator import OctoEverywhereConfigEntry, OctoEverywhereCoordinator, async_delete_issues

PLATFORMS: list[Platform] = [Platform.CAMERA, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: OctoEverywhereConfigEntry) -> bool:
    """Set up one printer from a config entry."""
    try:
        connection = AppConnection.from_dict(entry.data[CONF_CONNECTION])
    except (KeyError, InvalidArgumentError) as err:
        # Stored data we cannot use: only a new App Connection helps.
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_stored_connection"
        ) from err
    client = async_create_client(hass)
    # Runs on unload and when set-up fails (not ready, auth failed): closes the client's
    # own tasks, never Home Assistant's shared session.
    entry.async_on_unload(client.close)
    coordinator = OctoEverywhereCoordinator(hass, entry, client, connection)
    # Temporary failures (printer offline, 600/601/602, network) and 605/610/611 (with a
    # repair issue) raise ConfigEntryNotReady here; 603/604/606 ConfigEntryAuthFailed
    # (re-authentication); another error that needs a person ConfigEntryError (no retry).
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: OctoEverywhereConfigEntry) -> bool:
    """Unload a config entry (the client is closed by the on-unload callback)."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: OctoEverywhereConfigEntry) -> None:
    """Drop this printer's repair issues with the entry."""
    async_delete_issues(hass, entry)
