"""The base entity: one device per printer."""

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import OctoEverywhereCoordinator


class OctoEverywhereEntity(CoordinatorEntity[OctoEverywhereCoordinator]):
    """An entity of one printer; unavailable while the coordinator's refreshes fail."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: OctoEverywhereCoordinator, key: str) -> None:
        """Name the entity after the device; ``key`` makes its unique id."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        assert entry.unique_id is not None  # set by the config flow
        self._attr_unique_id = f"{entry.unique_id}_{key}"
        data = coordinator.data
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.unique_id)},
            name=data.info.printer_name or entry.title,
            manufacturer="OctoEverywhere",
            sw_version=data.status.platform_version,
            configuration_url=data.info.user_facing_url,
        )
