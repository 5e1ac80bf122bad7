"""The OctoEverywhere integration: 3D printers reached through OctoEverywhere App Connections."""

from oe_async import AppConnection, InvalidArgumentError

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
)
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.typing import ConfigType

from .api import async_create_client
from .const import CONF_CONNECTION, DOMAIN
from .coordinator import OctoEverywhereConfigEntry, OctoEverywhereCoordinator, async_delete_issues

PLATFORMS: list[Platform] = [Platform.CAMERA, Platform.SENSOR]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Keep repair issues from outliving the entry that raised them.

    An entry's repair issues go when it stops being set up or retried: unloaded, disabled,
    reloaded (a set-up that still fails raises them again) or removed. A hook of the entry
    would not do: Home Assistant runs none when it cancels a set-up retry (a 605 at set-up
    keeps the entry retrying, with its issue, until the user disables it).
    """

    @callback
    def _async_entry_changed(change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.domain == DOMAIN and (
            change is ConfigEntryChange.REMOVED or entry.state is ConfigEntryState.NOT_LOADED
        ):
            async_delete_issues(hass, entry)

    async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, _async_entry_changed)
    return True


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
    # The device follows the printer: its name and software version as each refresh knows them.
    coordinator.async_update_device()
    entry.async_on_unload(coordinator.async_add_listener(coordinator.async_update_device))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: OctoEverywhereConfigEntry) -> bool:
    """Unload a config entry (the client is closed by the on-unload callback)."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
