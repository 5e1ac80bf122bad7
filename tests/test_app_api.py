"""App APIs against the simulator: Info and Live Links, success and every error path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, PrinterLimits
from oe_async.testing import Simulator


async def test_info_decodes_everything_and_remembers_the_limits(
    printer: PrinterConnection, sim: Simulator
) -> None:
    assert printer.app_api.limits is None
    info = await printer.app_api.info()
    assert info.printer_name == "Simulated Printer"
    assert info.is_online is True
    assert info.local_ip == "127.0.0.1"
    assert info.user_facing_url == "https://octoeverywhere.com/printer/simulated"
    assert info.last_connection_time == datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    assert info.last_disconnect_time == datetime(2026, 11, 22, 22, 15, tzinfo=UTC)
    assert info.limits == PrinterLimits(
        max_download_bytes=2 * 1024**3, max_upload_bytes=1024**3, max_webcam_stream_seconds=300
    )
    assert printer.app_api.limits == info.limits
    request = sim.requests_to("app_api", "/api/appconnection/info")[0]
    assert request.headers["AppToken"] == sim.app_token
    assert "Authorization" not in request.headers


async def test_info_with_the_printer_offline_is_not_an_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.printer_online = False
    info = await printer.app_api.info()
    assert info.is_online is False


async def test_info_tolerates_missing_optional_fields(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(
        200,
        origin="app_api",
        body=b'{"IsOnline": true, "New": 1}',
        headers={"Content-Type": "application/json"},
    )
    info = await printer.app_api.info()
    assert info.is_online is True
    assert info.printer_name is None
    assert info.limits == PrinterLimits()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"IsOnline": true, "LastConnectionTimeUtc": "yesterday"}', "LastConnectionTimeUtc"),
    ],
)
async def test_info_undecodable_answers(
    printer: PrinterConnection, sim: Simulator, body: bytes, message: str
) -> None:
    sim.fail(200, origin="app_api", body=body)
    with pytest.raises(oe_async.UnexpectedResponseError, match=message):
        await printer.app_api.info()


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (
            lambda s: s.fail(400, origin="app_api", body=b'{"Error": "AppToken is required"}'),
            oe_async.AppAPIError,
        ),
        (
            lambda s: setattr(s.state, "connection", "not_found"),
            oe_async.AppConnectionNotFoundError,
        ),
        (lambda s: s.revoke(), oe_async.AppConnectionRevokedError),
        (lambda s: setattr(s.state, "supporter", False), oe_async.SupporterPerksRequiredError),
    ],
)
async def test_info_error_paths(
    printer: PrinterConnection, sim: Simulator, setup: object, error: type
) -> None:
    setup(sim)  # type: ignore[operator]
    with pytest.raises(error) as excinfo:
        await printer.app_api.info()
    if isinstance(excinfo.value, oe_async.AppAPIError):
        assert excinfo.value.status == 400
        assert not isinstance(excinfo.value, oe_async.PrinterHTTPError)
    if isinstance(excinfo.value, oe_async.SupporterPerksRequiredError):
        assert excinfo.value.recovery_url.endswith(f"appid={sim.app_id}")


async def test_wrong_app_token_is_603(oe: OctoEverywhere, sim: Simulator) -> None:
    printer = oe.printer(sim.app_connection(app_token="not-the-token"))
    with pytest.raises(oe_async.AppConnectionNotFoundError):
        await printer.app_api.info()


async def test_create_live_link(printer: PrinterConnection, sim: Simulator) -> None:
    link = await printer.app_api.create_live_link(48)
    assert link.live_id.isalnum()
    assert link.url.endswith(link.live_id)
    assert link.short_url is not None
    request = sim.requests_to("app_api", "/api/live/createfromappconnection")[0]
    assert request.method == "POST"
    assert request.headers["AppToken"] == sim.app_token


async def test_live_link_following_the_print(printer: PrinterConnection, sim: Simulator) -> None:
    assert (await printer.app_api.create_live_link(end_when_print_complete=True)).live_id
    sim.state.active_print = False
    with pytest.raises(oe_async.NoActivePrintError) as excinfo:
        await printer.app_api.create_live_link(end_when_print_complete=True)
    assert excinfo.value.status == 613


@pytest.mark.parametrize("status", [400, 500, 603, 604])
async def test_live_link_error_paths(
    printer: PrinterConnection, sim: Simulator, status: int
) -> None:
    sim.fail(status, origin="app_api", path="/api/live/*")
    with pytest.raises(oe_async.OctoEverywhereError) as excinfo:
        await printer.app_api.create_live_link(2)
    assert excinfo.value.status == status  # type: ignore[attr-defined]
    assert len(sim.requests_to("app_api")) == 1  # a POST is never retried on its own


@pytest.mark.parametrize("hours", [0, 0.5, 17521, -1, float("nan"), True, "24"])
async def test_live_link_hours_are_validated_before_sending(
    printer: PrinterConnection, sim: Simulator, hours: object
) -> None:
    with pytest.raises(oe_async.InvalidArgumentError, match="expiration_hours"):
        await printer.app_api.create_live_link(hours)  # type: ignore[arg-type]
    assert sim.requests == []


@pytest.mark.parametrize("hours", [1, 17520, 1.5])
async def test_live_link_hour_bounds_are_inclusive(
    printer: PrinterConnection, hours: float
) -> None:
    assert (await printer.app_api.create_live_link(hours)).live_id


async def test_live_link_missing_fields_are_named(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(200, origin="app_api", path="/api/live/*", body=b'{"Url": "https://x"}')
    with pytest.raises(oe_async.UnexpectedResponseError, match="LiveId"):
        await printer.app_api.create_live_link(2)
