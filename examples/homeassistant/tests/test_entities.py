"""Entities and the device follow the printer, not the moment of set-up; unchanged data
writes no state."""

from typing import Any

import attrs
from oe_async import JobState
from oe_async.testing import Simulator
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.octoeverywhere.const import DOMAIN, UPDATE_INTERVAL
from custom_components.octoeverywhere.coordinator import OctoEverywhereData
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .conftest import setup_entry
from .test_init import STATUS_PATH, _tick

WEBCAM_LIST_PATH = "/octoeverywhere-command-api/webcam/list"
NOZZLE = "camera.simulated_printer_nozzle_cam"
ROOM = "camera.simulated_printer_room"
STATE = "sensor.simulated_printer_job_state"


def cameras(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    """The camera entities the registry holds for ``entry``."""
    return {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.domain == "camera"
    }


def device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    found = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.unique_id), entry.entry_id
    )
    assert found is not None
    return found


async def poll(hass: HomeAssistant) -> None:
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)


async def test_cameras_and_version_come_when_the_printer_reports_them_later(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    # No print at set-up (613), and the plugin's webcam list answers the same: the entry
    # loads with what it knows, no camera and no software version.
    sim.fail(613, path=STATUS_PATH, origin="relay")
    sim.fail(613, path=WEBCAM_LIST_PATH, origin="relay")
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(STATE).state == "idle"
    assert cameras(hass, entry) == set()
    assert device(hass, entry).sw_version is None

    # A print starts: the status lists the webcams and the version.
    sim.clear_faults()
    await poll(hass)
    assert cameras(hass, entry) == {NOZZLE, ROOM}
    assert hass.states.get(NOZZLE).state == "idle"  # a working camera
    assert device(hass, entry).sw_version == "OctoPrint 1.10.3"


async def test_613_at_setup_still_lists_the_webcams(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    # The status answers 613, the plugin's webcam list does not depend on a print.
    sim.fail(613, path=STATUS_PATH, origin="relay")
    await setup_entry(hass, entry)
    assert cameras(hass, entry) == {NOZZLE, ROOM}
    assert sim.requests_to("relay", WEBCAM_LIST_PATH)
    # Later 613s keep what is known and do not ask for the list again.
    seen = len(sim.requests_to("relay", WEBCAM_LIST_PATH))
    await poll(hass)
    assert len(sim.requests_to("relay", WEBCAM_LIST_PATH)) == seen
    assert cameras(hass, entry) == {NOZZLE, ROOM}


async def test_a_webcam_added_later_gets_a_camera(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.state.webcam.webcams.append({**sim.state.webcam.webcams[0], "Name": "Bed cam"})
    await poll(hass)
    assert cameras(hass, entry) == {NOZZLE, ROOM, "camera.simulated_printer_bed_cam"}
    registered = er.async_get(hass).async_get("camera.simulated_printer_bed_cam")
    assert registered is not None
    assert registered.unique_id == f"{entry.unique_id}_webcam_2"
    assert registered.device_id == device(hass, entry).id
    # Named by the printer, with the integration's icon (icons.json: the "webcam" key).
    assert registered.translation_key == "webcam"
    state = hass.states.get("camera.simulated_printer_bed_cam")
    assert state is not None
    assert state.attributes["friendly_name"] == "Simulated Printer Bed cam"


async def test_a_webcam_without_a_name_is_numbered(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    unnamed = {**sim.state.webcam.webcams[0]}
    del unnamed["Name"]
    sim.state.webcam.webcams.append(unnamed)
    await setup_entry(hass, entry)
    # "Webcam 3": the translation, numbered from 1.
    state = hass.states.get("camera.simulated_printer_webcam_3")
    assert state is not None
    assert state.attributes["friendly_name"] == "Simulated Printer Webcam 3"


@pytest.mark.parametrize(
    "drop",
    [
        lambda webcams: webcams.pop(),  # removed from the printer
        lambda webcams: webcams[1].update(Enabled=False),  # disabled in the plugin
    ],
    ids=["removed", "disabled"],
)
async def test_a_webcam_the_printer_no_longer_lists_loses_its_camera(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry, drop: Any
) -> None:
    await setup_entry(hass, entry)
    assert cameras(hass, entry) == {NOZZLE, ROOM}
    drop(sim.state.webcam.webcams)
    await poll(hass)
    assert cameras(hass, entry) == {NOZZLE}
    assert hass.states.get(ROOM) is None
    assert hass.states.get(NOZZLE).state == "idle"


async def test_a_status_without_a_webcam_list_keeps_the_cameras(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(613, path=STATUS_PATH, origin="relay")  # says nothing about webcams
    await poll(hass)
    assert cameras(hass, entry) == {NOZZLE, ROOM}


async def test_a_camera_whose_webcam_went_while_home_assistant_was_off_is_removed(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    sim.state.webcam.webcams.pop()
    await setup_entry(hass, entry)
    assert cameras(hass, entry) == {NOZZLE}


async def test_the_device_follows_the_printer(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    assert device(hass, entry).sw_version == "OctoPrint 1.10.3"
    assert device(hass, entry).name == "Simulated Printer"
    assert device(hass, entry).configuration_url == "https://octoeverywhere.com/printer/simulated"

    sim.state.plugin.platform_version = "OctoPrint 1.11.2"  # updated on the printer
    sim.state.printer_name = "Voron"  # renamed in OctoEverywhere
    await poll(hass)
    assert device(hass, entry).sw_version == "OctoPrint 1.11.2"
    assert device(hass, entry).name == "Voron"
    assert len(dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)) == 1


async def test_unchanged_data_writes_no_state(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    ours = {
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    written: list[str] = []

    @callback
    def _ours(event_data: Any) -> bool:
        return event_data["entity_id"] in ours

    @callback
    def _record(event: Event[Any]) -> None:
        written.append(event.data["entity_id"])

    unsubscribe = [
        hass.bus.async_listen(EVENT_STATE_CHANGED, _record, event_filter=_ours),
        hass.bus.async_listen(EVENT_STATE_REPORTED, _record, event_filter=_ours),
    ]
    coordinator = entry.runtime_data
    before = coordinator.data
    polls = len(sim.requests_to("relay", STATUS_PATH))
    await poll(hass)
    await poll(hass)
    # Two refreshes happened, both with the same data: no state was rewritten.
    assert len(sim.requests_to("relay", STATUS_PATH)) == polls + 2
    assert coordinator.data is not before
    assert coordinator.data == before
    assert written == []

    # Something the entities show changes: they are told.
    sim.state.plugin.job_state = "paused"
    await poll(hass)
    assert hass.states.get(STATE).state == "paused"
    assert STATE in written
    for cancel in unsubscribe:
        cancel()


async def test_octoeverywheres_own_timers_alone_are_no_change(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    data = entry.runtime_data.data
    assert data.status.octoeverywhere is not None
    # Gadget's timers tick on every poll; no entity shows them, so that alone is no change.
    ticked = attrs.evolve(data.status.octoeverywhere, print_start_time_sec=1.0, gadget=None)
    later = OctoEverywhereData(
        info=data.info, status=attrs.evolve(data.status, octoeverywhere=ticked)
    )
    assert later.status != data.status
    assert later == data
    # Anything else is a change.
    paused = attrs.evolve(data.status.job, state=JobState.PAUSED)
    assert OctoEverywhereData(info=data.info, status=attrs.evolve(data.status, job=paused)) != data
