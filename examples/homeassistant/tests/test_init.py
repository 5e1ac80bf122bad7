"""Set-up, entities, not-ready and recovery, the 605/610/611 repairs, errors that need a
person, 613, re-authentication and unload."""

import asyncio
from datetime import timedelta
import json
import logging
from unittest.mock import patch

from oe_async import BasicAuth, OctoEverywhere, RequestTimeoutError
from oe_async.testing import Simulator
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.octoeverywhere import api
from custom_components.octoeverywhere.const import (
    DOMAIN,
    MAX_RETRY_AFTER,
    UPDATE_INTERVAL,
    USER_ACTION_INTERVAL,
)
from custom_components.octoeverywhere.coordinator import issue_id, supporter_issue_id
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .conftest import setup_entry

STATE = "sensor.simulated_printer_job_state"
#: The plugin's status command, as the relay sees it.
STATUS_PATH = "/octoeverywhere-command-api/status"


async def _tick(hass: HomeAssistant, seconds: float) -> None:
    """Move Home Assistant's clock on and let what was due run."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    # Refreshes and set-up retries run as background tasks.
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_setup_creates_the_device_and_its_entities(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED

    assert hass.states.get(STATE).state == "printing"
    assert hass.states.get("sensor.simulated_printer_progress").state == "42.5"
    assert float(hass.states.get("sensor.simulated_printer_time_left").state) == 80.0  # minutes
    hotend = hass.states.get("sensor.simulated_printer_hotend_temperature")
    assert hotend.state == "219.8"
    assert hotend.attributes["unit_of_measurement"] == "°C"
    assert hass.states.get("sensor.simulated_printer_bed_temperature").state == "60.1"
    assert hass.states.get("camera.simulated_printer_nozzle_cam") is not None
    assert hass.states.get("camera.simulated_printer_room") is not None

    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.unique_id), entry.entry_id
    )
    assert device is not None
    assert device.name == "Simulated Printer"
    assert device.sw_version == "OctoPrint 1.10.3"
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert {e.unique_id for e in entities} >= {
        f"{entry.unique_id}_job_state",
        f"{entry.unique_id}_webcam_0",
        f"{entry.unique_id}_webcam_1",
    }
    # Disabled by default: the targets and the chamber (many printers have none).
    disabled = {e.unique_id for e in entities if e.disabled_by is not None}
    assert disabled == {
        f"{entry.unique_id}_{key}" for key in ("hotend_target", "bed_target", "chamber_temperature")
    }


async def test_idle_printer_has_no_progress(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.state.plugin.job_state = "idle"
    await setup_entry(hass, entry)
    assert hass.states.get(STATE).state == "idle"
    assert hass.states.get("sensor.simulated_printer_progress").state == "unknown"
    assert hass.states.get("sensor.simulated_printer_time_left").state == "unknown"


async def test_offline_printer_is_not_ready_then_recovers(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.state.printer_online = False
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "offline" in (entry.reason or "")

    sim.state.printer_online = True
    await _tick(hass, 120)  # Home Assistant retries the set-up
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(STATE).state == "printing"


async def test_relay_errors_at_setup_are_not_ready(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.fail(601, origin="relay")  # every relay call: printer offline
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    sim.clear_faults()
    await _tick(hass, 120)
    assert entry.state is ConfigEntryState.LOADED


async def test_entities_go_unavailable_while_offline_and_come_back(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.state.printer_online = False
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    assert hass.states.get("camera.simulated_printer_nozzle_cam").state == STATE_UNAVAILABLE

    sim.state.printer_online = True
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == "printing"


async def test_supporter_perks_lost_raises_a_repair_issue_with_the_recovery_link(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.state.supporter = False
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY

    issue = ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry))
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "supporter_perks_required"
    recovery = f"https://octoeverywhere.com/appportal/v1/nosupporterperks?appid={sim.app_id}"
    assert issue.learn_more_url == recovery
    assert issue.translation_placeholders == {"printer": "Simulated Printer", "url": recovery}

    # Perks restored: the next retry sets the entry up and the issue goes away.
    sim.state.supporter = True
    await _tick(hass, 120)
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry)) is None


async def test_supporter_perks_lost_while_running(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.state.supporter = False
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry)) is not None


async def test_revoked_connection_at_setup_starts_reauth(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.revoke()  # 604
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]
    assert flows[0]["context"]["entry_id"] == entry.entry_id


async def test_revoked_connection_while_running_starts_reauth(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(606, origin="relay")  # wrong credentials from now on
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]


async def test_unload_closes_the_client_but_not_the_shared_session(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    client = entry.runtime_data.client
    assert client.session is async_get_clientsession(hass)  # borrowed, not created
    tasks_before = asyncio.all_tasks()

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert client.closed
    assert not async_get_clientsession(hass).closed
    # Nothing the entry started is still running (the harness also checks timers).
    assert not {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    # The coordinator stopped polling: no request reaches the simulator after unload.
    seen = len(sim.requests)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() * 3)
    assert len(sim.requests) == seen


async def test_failed_setup_closes_the_client(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    clients: list[OctoEverywhere] = []

    def create(hass: HomeAssistant) -> OctoEverywhere:
        clients.append(api.async_create_client(hass))
        return clients[-1]

    sim.state.printer_online = False
    with patch("custom_components.octoeverywhere.async_create_client", side_effect=create):
        await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert [c.closed for c in clients] == [True]
    assert not async_get_clientsession(hass).closed
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()


async def test_supporter_perks_restored_while_running_is_seen_at_the_slower_poll(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.state.supporter = False
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    seen = len(sim.requests)
    sim.state.supporter = True
    # Nothing changes before a person acts: no asking again every 30 seconds.
    await _tick(hass, UPDATE_INTERVAL.total_seconds() * 2 + 1)
    assert len(sim.requests) == seen
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    await _tick(hass, USER_ACTION_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == "printing"
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry)) is None


@pytest.mark.parametrize(
    ("status", "kind"), [(610, "plugin_update"), (611, "beta_access")], ids=["610", "611"]
)
async def test_plugin_update_or_beta_access_while_running_raise_a_repair_issue(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry, status: int, kind: str
) -> None:
    await setup_entry(hass, entry)
    sim.fail(status, path=STATUS_PATH, origin="relay")
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert entry.state is ConfigEntryState.LOADED  # still polling: it recovers by itself
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert coordinator.last_exception.translation_key == f"{kind}_required"

    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, kind))
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert not issue.is_fixable
    assert issue.translation_key == f"{kind}_required"
    assert issue.translation_placeholders == {"printer": "Simulated Printer"}
    assert issue.learn_more_url is None

    # The person updated the plugin (got beta access): the next look finds it, the issue goes.
    sim.clear_faults()
    await _tick(hass, USER_ACTION_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == "printing"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, kind)) is None


async def test_plugin_update_required_at_setup_is_not_ready_with_a_repair_issue(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.fail(610, path=STATUS_PATH, origin="relay")
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, "plugin_update"))

    sim.clear_faults()
    await _tick(hass, 120)
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, "plugin_update")) is None


async def test_removing_the_entry_removes_its_repair_issues(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.fail(611, path=STATUS_PATH, origin="relay")
    await setup_entry(hass, entry)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, "beta_access"))
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry, "beta_access")) is None


def _plugin_answers(sim: Simulator, plugin_status: int, error: str) -> None:
    """The plugin's status command answers ``plugin_status`` (HTTP 200, the envelope)."""
    body = json.dumps({"Status": plugin_status, "Error": error}).encode()
    sim.fail(
        200,
        path=STATUS_PATH,
        origin="relay",
        body=body,
        headers={"Content-Type": "application/json"},
    )


async def test_an_error_that_needs_a_person_at_setup_is_a_config_entry_error(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    # 789: the plugin has no valid credentials for the printer's own API. Only the owner
    # can fix it (in the plugin); retrying on a timer would not.
    _plugin_answers(sim, 789, "Moonraker refused the API key.")
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR  # Home Assistant does not retry
    assert entry.reason == (
        "The printer cannot be used until this is fixed: Moonraker refused the API key."
    )
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)  # no reauth
    seen = len(sim.requests)
    await _tick(hass, 600)
    assert len(sim.requests) == seen
    assert entry.state is ConfigEntryState.SETUP_ERROR


async def test_an_error_that_needs_a_person_while_running_makes_entities_unavailable(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    _plugin_answers(sim, 789, "Moonraker refused the API key.")
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    assert isinstance(coordinator.last_exception, ConfigEntryError)
    assert coordinator.last_exception.translation_placeholders == {
        "error": "Moonraker refused the API key."
    }
    # Fixed in the plugin: the next poll finds it without a reload.
    sim.clear_faults()
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == "printing"


async def test_a_temporary_error_while_running_honours_retry_after(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(602, path=STATUS_PATH, origin="relay", headers={"Retry-After": "120"})
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert coordinator.last_exception.translation_placeholders == {
        "error": "The printer's OctoEverywhere plugin did not answer in time."
    }
    sim.clear_faults()
    seen = len(sim.requests)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert len(sim.requests) == seen  # not before the 120 s the relay asked for
    await _tick(hass, 120)
    assert hass.states.get(STATE).state == "printing"


async def test_no_active_print_is_an_idle_printer_not_a_failure(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(613, path=STATUS_PATH, origin="relay")
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    coordinator = entry.runtime_data
    assert coordinator.last_update_success
    assert hass.states.get(STATE).state == "idle"
    assert hass.states.get("sensor.simulated_printer_progress").state == "unknown"
    assert hass.states.get("sensor.simulated_printer_hotend_temperature").state == "unknown"
    # What the last status knew stays: the cameras and the device.
    assert hass.states.get("camera.simulated_printer_nozzle_cam").state != STATE_UNAVAILABLE
    assert coordinator.data.status.platform_version == "OctoPrint 1.10.3"


async def test_no_active_print_at_setup_sets_the_entry_up(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.fail(613, path=STATUS_PATH, origin="relay")
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(STATE).state == "idle"


async def test_a_refresh_ends_within_its_deadline(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    coordinator = entry.runtime_data
    sim.state.latency = 1.0  # every answer
    with patch("custom_components.octoeverywhere.coordinator.UPDATE_TIMEOUT", 0.2):
        start = hass.loop.time()
        await coordinator.async_refresh()
        elapsed = hass.loop.time() - start
    assert elapsed < 0.8
    assert not coordinator.last_update_success
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert isinstance(coordinator.last_exception.__cause__, RequestTimeoutError)
    await asyncio.sleep(1.0)  # the simulator's answer that nobody waits for any more
    sim.state.latency = 0.0


async def test_a_day_of_retry_after_is_capped(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(602, path=STATUS_PATH, origin="relay", headers={"Retry-After": "86400"})
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    assert coordinator.last_exception.retry_after == MAX_RETRY_AFTER.total_seconds()

    # The printer recovers at once; the relay's day is not honoured, the cap is.
    # (Each tick is measured from now: the poll is due MAX_RETRY_AFTER after the failure.)
    sim.clear_faults()
    seen = len(sim.requests)
    await _tick(hass, MAX_RETRY_AFTER.total_seconds() - 60)
    assert len(sim.requests) == seen
    await _tick(hass, MAX_RETRY_AFTER.total_seconds() + 1)
    assert hass.states.get(STATE).state == "printing"


async def test_a_repair_issues_retry_after_is_capped_too(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(610, path=STATUS_PATH, origin="relay", headers={"Retry-After": "86400"})
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    coordinator = entry.runtime_data
    assert coordinator.last_exception.retry_after == MAX_RETRY_AFTER.total_seconds()


async def test_a_repair_issue_goes_when_the_retrying_entry_is_disabled(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.state.supporter = False  # 605 at set-up: the entry keeps retrying, with its issue
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry))

    await hass.config_entries.async_set_disabled_by(entry.entry_id, ConfigEntryDisabler.USER)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry)) is None


async def test_a_repair_issue_goes_with_an_unload_and_comes_back_if_still_true(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(611, path=STATUS_PATH, origin="relay")
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    issue = issue_id(entry, "beta_access")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue) is None

    # Set up again while the owner still has no beta access: the issue is raised again.
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue)


async def test_other_entries_keep_their_issues(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.state.supporter = False
    await setup_entry(hass, entry)
    other = MockConfigEntry(domain=DOMAIN, title="Other", unique_id="other", data={})
    other.add_to_hass(hass)
    await setup_entry(hass, other)  # no usable connection: it asks for re-authentication
    assert await hass.config_entries.async_remove(other.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, supporter_issue_id(entry))


async def test_unavailable_and_recovered_are_logged_once_each(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    await setup_entry(hass, entry)
    caplog.clear()
    sim.state.printer_online = False
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in failures] == [
        "Error fetching octoeverywhere Simulated Printer data: "
        "The printer is offline: it is not connected to OctoEverywhere"
    ]
    sim.state.printer_online = True
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert recovered == ["Fetching octoeverywhere Simulated Printer data recovered"]


def _credential_echo(sim: Simulator) -> tuple[str, list[str]]:
    """A printer error message echoing request headers, and the secrets in it.

    Some printer software answers an error with the request it refused, headers included:
    the plugin passes that text on as its error message.
    """
    connection = sim.app_connection()
    auth = connection.auth
    assert isinstance(auth, BasicAuth)
    header = auth.header_value  # "Basic <base64 of user:password>"
    encoded = header.split(" ", 1)[1]
    message = (
        "Moonraker refused the request. Request headers: "
        f"Authorization: {header}\r\nX-Debug-Password: {auth.password} "
        f"(tried {auth.password} with token {connection.app_token})"
    )
    return message, [encoded, auth.password, connection.app_token]


async def test_credentials_in_printer_text_never_reach_the_entry_reason_or_the_log(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Needs oe_async to scrub server text (Authorization values, its own secrets)."""
    caplog.set_level(logging.DEBUG)
    message, secrets = _credential_echo(sim)
    _plugin_answers(sim, 789, message)  # a person must act: ConfigEntryError, its reason shown
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    reason = entry.reason or ""
    assert reason.startswith("The printer cannot be used until this is fixed: Moonraker")

    # While running too: the same text as an update failure, logged.
    sim.clear_faults()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    _plugin_answers(sim, 750, message)
    await _tick(hass, UPDATE_INTERVAL.total_seconds() + 1)
    assert hass.states.get(STATE).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    shown = str(coordinator.last_exception)
    assert "Moonraker refused" in shown

    for secret in secrets:
        assert secret not in reason, "a credential in the entry's reason"
        assert secret not in shown, "a credential in the update failure"
        assert secret not in caplog.text, "a credential in the log"
