"""The config flow: portal link, pasted completion URL, validation, re-authentication."""

import json
from typing import Any
from unittest.mock import patch

from oe_async import AppAPI, AppConnection
from oe_async.testing import Simulator
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from yarl import URL

from custom_components.octoeverywhere.const import (
    APP_ID,
    CONF_COMPLETION_URL,
    CONF_CONNECTION,
    DOMAIN,
)
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from .conftest import setup_entry


def portal_state(result: Any) -> str:
    """The state the flow put in the portal link it shows."""
    start = URL(result["description_placeholders"]["portal_url"])
    assert start.host == "octoeverywhere.com"
    assert start.query["appid"] == APP_ID
    back = URL(start.query["returnUrl"])
    assert str(back.with_query(None)) == "https://octoeverywhere.com/appportal/v1/complete"
    return back.query["state"]


async def start_user_flow(hass: HomeAssistant) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result


async def test_user_flow_creates_the_entry(
    hass: HomeAssistant, sim: Simulator, unique_id: str
) -> None:
    result = await start_user_flow(hass)
    completion = sim.completion_url(state=portal_state(result))

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: f"  {completion}  "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Simulated Printer"
    assert result["result"].unique_id == unique_id
    stored = AppConnection.from_dict(result["data"][CONF_CONNECTION])
    assert stored.url == sim.relay_url
    assert stored.app_token == sim.app_token
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED
    # info() validated it: one App API call, with the connection's token.
    assert sim.requests_to("app_api", "/api/appconnection/info")


async def test_a_completion_url_from_another_flow_is_refused(
    hass: HomeAssistant, sim: Simulator
) -> None:
    result = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(sim.completion_url(state="not-this-flow"))}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_COMPLETION_URL: "invalid_completion_url"}
    assert "state" in result["description_placeholders"]["error"]
    # Nothing was sent anywhere for a URL the flow did not start.
    assert not sim.requests

    # The same flow still accepts its own completion URL.
    completion = sim.completion_url(state=portal_state(result))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(completion)}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    "url",
    ["not a url", "https://octoeverywhere.com/appportal/v1/complete?success=false"],
)
async def test_unusable_completion_urls(hass: HomeAssistant, sim: Simulator, url: str) -> None:
    result = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: url}
    )
    assert result["errors"] == {CONF_COMPLETION_URL: "invalid_completion_url"}


def repair(sim: Simulator) -> None:
    """Undo every way the tests below break the simulator."""
    sim.state.connection = "ok"
    sim.state.supporter = True
    sim.clear_faults()


async def finish_user_flow(hass: HomeAssistant, sim: Simulator, result: Any) -> Any:
    """The user pastes this flow's completion URL again: the entry is created."""
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    return result


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        (lambda sim: sim.revoke(), "invalid_auth"),
        (lambda sim: setattr(sim.state, "connection", "not_found"), "invalid_auth"),
        (lambda sim: setattr(sim.state, "supporter", False), "supporter_perks_required"),
        (lambda sim: sim.fail(600, origin="app_api"), "cannot_connect"),
        # An App API answer without UserFacingPrinterUrl: nothing identifies the printer.
        (
            lambda sim: sim.fail(
                200,
                path="/api/appconnection/info",
                origin="app_api",
                body=json.dumps({"PrinterName": "P", "IsOnline": True}).encode(),
                headers={"Content-Type": "application/json"},
            ),
            "no_printer_id",
        ),
    ],
)
async def test_validation_errors_then_recovery(
    hass: HomeAssistant, sim: Simulator, break_it: Any, error: str, unique_id: str
) -> None:
    result = await start_user_flow(hass)
    state = portal_state(result)
    break_it(sim)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(sim.completion_url(state=state))}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    if error == "supporter_perks_required":
        assert result["description_placeholders"]["url"] == (
            f"https://octoeverywhere.com/appportal/v1/nosupporterperks?appid={APP_ID}"
        )
    for secret in sim.secrets():
        assert secret not in str(result)

    # Fixed on OctoEverywhere's side: the same form now creates the entry.
    repair(sim)
    result = await finish_user_flow(hass, sim, result)
    assert result["result"].unique_id == unique_id


async def test_an_unexpected_error_is_unknown_then_recovers(
    hass: HomeAssistant, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    result = await start_user_flow(hass)
    with patch.object(AppAPI, "info", side_effect=RuntimeError("a bug")):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected exception" in caplog.text  # logged with its traceback
    await finish_user_flow(hass, sim, result)


@pytest.mark.parametrize(
    "page",
    [
        "https://octoeverywhere.example.net/appportal/v1/complete",  # another host
        "http://octoeverywhere.com/appportal/v1/complete",  # not https
        "https://octoeverywhere.com:8443/appportal/v1/complete",  # another port
        "https://octoeverywhere.com/appportal/v1/completed",  # another page
        "https://octoeverywhere.com@evil.example.net/appportal/v1/complete",  # user info trick
        "https://user@octoeverywhere.com/appportal/v1/complete",
    ],
)
async def test_a_completion_page_that_is_not_octoeverywheres_is_refused(
    hass: HomeAssistant, sim: Simulator, page: str
) -> None:
    result = await start_user_flow(hass)
    # Every field valid, this flow's state: only the page itself is wrong.
    good = sim.completion_url(state=portal_state(result))
    forged = URL(page).with_query(good.query)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(forged)}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_COMPLETION_URL: "invalid_completion_url"}
    assert "completion page" in result["description_placeholders"]["error"]
    assert not sim.requests  # nothing was sent anywhere
    for secret in sim.secrets():
        assert secret not in str(result)
    await finish_user_flow(hass, sim, result)


@pytest.mark.parametrize(
    "pasted",
    [
        "https://[octoeverywhere.com/appportal/v1/complete?success=true",  # bad IPv6 host
        "https://octoeverywhere.com:99999/appportal/v1/complete?success=true",  # bad port
    ],
)
async def test_an_address_that_is_no_url_is_refused(
    hass: HomeAssistant, sim: Simulator, pasted: str
) -> None:
    result = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: pasted}
    )
    assert result["errors"] == {CONF_COMPLETION_URL: "invalid_completion_url"}
    assert not sim.requests


async def test_the_completion_page_may_end_in_a_slash_and_carry_a_fragment(
    hass: HomeAssistant, sim: Simulator
) -> None:
    result = await start_user_flow(hass)
    good = sim.completion_url(state=portal_state(result))
    # The portal may hand the fields over in the fragment; the page is still its own.
    pasted = URL("https://OctoEverywhere.com/appportal/v1/complete/").with_fragment(
        good.query_string
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(pasted)}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_an_offline_printer_can_still_be_added(hass: HomeAssistant, sim: Simulator) -> None:
    sim.state.printer_online = False
    result = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.SETUP_RETRY


async def test_the_same_printer_twice_is_refused(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    result = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth_after_revocation(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    sim.revoke()
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["printer"] == "Simulated Printer"

    # The user connects the printer again: a new, working App Connection.
    sim.state.connection = "ok"
    completion = sim.completion_url(state=portal_state(result))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(completion)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.simulated_printer_job_state").state == "printing"


async def test_reauth_with_a_still_revoked_connection_shows_an_error(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    result = await entry.start_reauth_flow(hass)
    sim.revoke()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}


async def test_reauth_with_another_printer_is_refused(hass: HomeAssistant, sim: Simulator) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Other printer",
        unique_id="another-printer",
        data={CONF_CONNECTION: sim.app_connection().to_dict()},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_printer"
    assert entry.data[CONF_CONNECTION] == sim.app_connection().to_dict()


async def test_reconfigure_gives_the_entry_a_new_app_connection(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    # The entry holds an old connection (another token); the user makes a new one.
    old = {**entry.data[CONF_CONNECTION], "app_token": "an-old-token"}
    hass.config_entries.async_update_entry(entry, data={CONF_CONNECTION: old})
    await setup_entry(hass, entry)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"]["printer"] == "Simulated Printer"

    # A first attempt that fails (OctoEverywhere down), then one that works.
    sim.fail(600, origin="app_api")
    completion = sim.completion_url(state=portal_state(result))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(completion)}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    sim.clear_faults()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_COMPLETION_URL: str(completion)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    stored = AppConnection.from_dict(entry.data[CONF_CONNECTION])
    assert stored.app_token == sim.app_token
    assert stored.url == sim.relay_url
    assert entry.state is ConfigEntryState.LOADED  # reloaded with the new connection
    assert hass.states.get("sensor.simulated_printer_job_state").state == "printing"


async def test_reconfigure_with_another_printer_is_refused(
    hass: HomeAssistant, sim: Simulator
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Other printer",
        unique_id="another-printer",
        data={CONF_CONNECTION: {"kept": "as it was"}},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_COMPLETION_URL: str(sim.completion_url(state=portal_state(result)))},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_printer"
    assert entry.data[CONF_CONNECTION] == {"kept": "as it was"}
