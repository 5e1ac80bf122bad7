"""The base entity (one device per printer) and the cameras that follow the printer's list."""

from collections.abc import Callable

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import OctoEverywhereConfigEntry, OctoEverywhereCoordinator


def entity_unique_id(entry: OctoEverywhereConfigEntry, key: str) -> str:
    """The unique id of this printer's entity ``key``."""
    assert entry.unique_id is not None  # set by the config flow
    return f"{entry.unique_id}_{key}"


def webcam_key(index: int) -> str:
    """The entity key of the camera for webcam ``index`` of the plugin's list."""
    return f"webcam_{index}"


class OctoEverywhereEntity(CoordinatorEntity[OctoEverywhereCoordinator]):
    """An entity of one printer; unavailable while the coordinator's refreshes fail."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: OctoEverywhereCoordinator, key: str) -> None:
        """Name the entity after the device; ``key`` makes its unique id."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        assert entry.unique_id is not None  # set by the config flow
        self._attr_unique_id = entity_unique_id(entry, key)
        # The coordinator creates the device and keeps its name and version up to date.
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry.unique_id)})


@callback
def async_follow_webcams(
    hass: HomeAssistant,
    entry: OctoEverywhereConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    create: Callable[[int, str | None], Entity],
) -> None:
    """Keep one camera per enabled webcam of the printer's list, as the list changes.

    ``create(index, name)`` makes the camera of webcam ``index``. A webcam the printer
    lists later (a 613 at set-up, a camera plugged in) gets its camera at the next refresh
    that lists it; a camera whose webcam the printer no longer lists (removed, disabled) is
    removed from the entity registry, at set-up too. A status that does not list the webcams
    at all changes nothing.
    """
    coordinator = entry.runtime_data
    registry = er.async_get(hass)
    added: set[int] = set()

    @callback
    def _async_sync() -> None:
        webcams = coordinator.data.status.webcams
        if webcams is None:
            return
        listed = {
            index: webcam.name for index, webcam in enumerate(webcams.webcams) if webcam.enabled
        }
        wanted = {entity_unique_id(entry, webcam_key(index)) for index in listed}
        for registered in er.async_entries_for_config_entry(registry, entry.entry_id):
            if registered.domain == Platform.CAMERA and registered.unique_id not in wanted:
                registry.async_remove(registered.entity_id)
        added.intersection_update(listed)
        if new := sorted(listed.keys() - added):
            added.update(new)
            async_add_entities(create(index, listed[index]) for index in new)

    _async_sync()
    entry.async_on_unload(coordinator.async_add_listener(_async_sync))
