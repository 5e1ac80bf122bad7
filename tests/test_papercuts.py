"""The smaller papercuts of issue 16.11, each against the simulator."""

from __future__ import annotations

import logging

import pytest

from oe_async import (
    AppConnection,
    InvalidArgumentError,
    PrinterHTTPError,
    RequestTimeoutError,
    RetryPolicy,
)
from oe_async.testing import Fault, Simulator

from .helpers import Blackhole


async def test_a_relay_only_connection_needs_no_app_token(sim: Simulator) -> None:
    conn = sim.app_connection(app_token=None)
    assert "app_token" not in repr(conn)
    assert AppConnection.from_dict(conn.to_dict()) == conn
    async with sim.client() as oe:
        printer = oe.printer(conn)
        assert isinstance(await printer.get_json("/api/printer"), dict)
        await printer.files.upload("/api/files/local", b"G28\n", filename="a.gcode")
        with pytest.raises(InvalidArgumentError, match="no app_token"):
            await printer.app_api.info()
    assert not sim.requests_to("app_api")  # no pre-check, no AppToken anywhere
    assert not [r for r in sim.requests if "AppToken" in r.headers]


async def test_a_502_says_it_may_be_the_relay(sim: Simulator) -> None:
    sim.state.faults.append(Fault(status=502, path="/api/printer"))
    async with sim.client(retry=RetryPolicy.never()) as oe:
        with pytest.raises(PrinterHTTPError, match="The relay or the printer answered HTTP 502"):
            await oe.printer(sim.app_connection()).get_json("/api/printer")


async def test_log_lines_name_the_printer_without_its_secrets(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="oe_async")
    a = await sim.add_printer(printer_name="Voron")
    b = await sim.add_printer()
    async with sim.client() as oe:
        await oe.printer(a.app_connection()).get_json("/api/printer")
        await oe.printer(b.app_connection(printer_name=None)).get_json("/api/printer")
    lines = [r.getMessage() for r in caplog.records if "/api/printer ->" in r.getMessage()]
    assert lines[0].startswith("printer 'Voron' (")
    assert lines[1].startswith("printer ")
    assert "Voron" not in lines[1]


async def test_a_network_error_has_a_sentence_for_users() -> None:
    async with (
        Blackhole() as hole,
        Simulator() as sim,
        sim.client(retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(sim.app_connection(url=str(hole.url)))
        with pytest.raises(RequestTimeoutError) as info:
            await printer.get_json("/api/printer", timeout=0.3)
    err = info.value
    assert err.message == "The printer did not answer in time. Try again shortly."
    assert str(err).startswith("GET /api/printer timed out")
    assert err.temporary
    assert not err.needs_user_action
