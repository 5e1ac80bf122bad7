"""Sensors: job state, progress, time left and temperatures."""

from collections.abc import Callable
from dataclasses import dataclass

from oe_async import JobState

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfTemperature, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .coordinator import OctoEverywhereConfigEntry, OctoEverywhereCoordinator, OctoEverywhereData
from .entity import OctoEverywhereEntity

# The coordinator does the polling.
PARALLEL_UPDATES = 0

#: Progress and time left only mean something while a job is under way.
ACTIVE_STATES = frozenset(
    {JobState.WARMING_UP, JobState.PRINTING, JobState.PAUSED, JobState.RESUMING}
)


def _active(data: OctoEverywhereData) -> bool:
    return data.status.job.state in ACTIVE_STATES


@dataclass(frozen=True, kw_only=True)
class OctoEverywhereSensorDescription(SensorEntityDescription):
    """A sensor and how to read its value from a refresh."""

    value_fn: Callable[[OctoEverywhereData], StateType]


SENSORS: tuple[OctoEverywhereSensorDescription, ...] = (
    OctoEverywhereSensorDescription(
        key="job_state",
        translation_key="job_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in JobState if state is not JobState.UNKNOWN],
        # A state this oe_async version does not know yet shows as "unknown".
        value_fn=lambda data: (
            None if data.status.job.state is JobState.UNKNOWN else data.status.job.state.value
        ),
    ),
    OctoEverywhereSensorDescription(
        key="progress",
        translation_key="progress",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda data: data.status.job.current_print.progress if _active(data) else None,
    ),
    OctoEverywhereSensorDescription(
        key="time_left",
        translation_key="time_left",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda data: (
            data.status.job.current_print.time_left_sec if _active(data) else None
        ),
    ),
    OctoEverywhereSensorDescription(
        key="hotend_temperature",
        translation_key="hotend_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: data.status.job.current_print.temps.hotend_actual,
    ),
    OctoEverywhereSensorDescription(
        key="hotend_target",
        translation_key="hotend_target",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        entity_registry_enabled_default=False,
        value_fn=lambda data: data.status.job.current_print.temps.hotend_target,
    ),
    OctoEverywhereSensorDescription(
        key="bed_temperature",
        translation_key="bed_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: data.status.job.current_print.temps.bed_actual,
    ),
    OctoEverywhereSensorDescription(
        key="bed_target",
        translation_key="bed_target",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        entity_registry_enabled_default=False,
        value_fn=lambda data: data.status.job.current_print.temps.bed_target,
    ),
    OctoEverywhereSensorDescription(
        key="chamber_temperature",
        translation_key="chamber_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_registry_enabled_default=False,
        value_fn=lambda data: data.status.job.current_print.temps.chamber_actual,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OctoEverywhereConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the printer's sensors."""
    coordinator = entry.runtime_data
    async_add_entities(OctoEverywhereSensor(coordinator, description) for description in SENSORS)


class OctoEverywhereSensor(OctoEverywhereEntity, SensorEntity):
    """A value from the printer's status."""

    entity_description: OctoEverywhereSensorDescription

    def __init__(
        self,
        coordinator: OctoEverywhereCoordinator,
        description: OctoEverywhereSensorDescription,
    ) -> None:
        """Create the sensor described by ``description``."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        """The value from the last successful refresh."""
        return self.entity_description.value_fn(self.coordinator.data)
