"""The LAN route proves it reaches the same printer: its OctoEverywhere printer id.

Under ``prefer_local`` the LAN is used only when it tells the printer id the relay tells
(``GET /api/plugin/octoeverywhere``, OctoPrint's plugin, no API key), when the relay tells
one; the simulator's LAN instance plays another device with ``state.lan_printer_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from yarl import URL

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, Route, RoutePolicy, RoutingOptions
from oe_async.routing import Router
from oe_async.testing import SECRET_MARKER, Simulator

from .helpers import EVENTUALLY, eventually, polls

IDENTITY = "/api/plugin/octoeverywhere"
PRINTER_KEY = f"{SECRET_MARKER}-lan-key"
#: A probe of a LAN that is up may take long on a loaded machine: a generous timeout.
ROUTING = RoutingOptions(probe_timeout=EVENTUALLY)
#: A re-probe due at every request that finds none running.
EVERY_TIME = RoutingOptions(probe_timeout=EVENTUALLY, reprobe_interval=0)


async def requests_until(
    printer: PrinterConnection, condition: Callable[[], bool], what: str
) -> None:
    """Send requests (each may start a background re-probe) until ``condition`` holds."""
    async for _ in polls():
        if condition():
            return
        await printer.get_json("/api/version")
    pytest.fail(f"not true after {EVENTUALLY:g} s: {what}")


async def on_the_lan(
    oe: OctoEverywhere, sim: Simulator, routing: RoutingOptions
) -> PrinterConnection:
    """A printer with an API key whose first request took the (simulated) LAN."""
    lan = await sim.start_lan()
    printer = oe.printer(
        sim.app_connection(), lan_url=lan, headers={"X-Api-Key": PRINTER_KEY}, routing=routing
    )
    await printer.get_json("/api/version")
    assert printer.route is Route.LAN
    return printer


def lan_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "oe_async" and r.levelno == logging.WARNING and "LAN address" in r.getMessage()
    ]


def assert_no_ids(caplog: pytest.LogCaptureFixture, sim: Simulator) -> None:
    ids = [i for i in (sim.state.printer_id, sim.state.lan_printer_id) if i]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert ids
    assert not [i for i in ids if i in text]


async def test_the_same_printer_id_uses_the_lan(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    await on_the_lan(oe, sim, ROUTING)
    assert sim.requests_to("lan", "/api/version")
    assert lan_warnings(caplog) == []
    # Neither identity request carried a printer secret or the relay credentials to the LAN;
    # the relay's carried its own credential only.
    (lan_identity,) = sim.requests_to("lan", IDENTITY)
    assert "X-Api-Key" not in lan_identity.headers
    assert "Authorization" not in lan_identity.headers
    (relay_identity,) = sim.requests_to("relay", IDENTITY)
    assert "X-Api-Key" not in relay_identity.headers
    assert "Authorization" in relay_identity.headers


async def test_another_printer_id_keeps_the_relay_and_warns_once_without_the_ids(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    lan = await sim.start_lan()
    sim.state.lan_printer_id = f"{SECRET_MARKER}-printer-id-another"
    printer = oe.printer(
        sim.app_connection(), lan_url=lan, headers={"X-Api-Key": PRINTER_KEY}, routing=EVERY_TIME
    )
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY
    # Re-probes (in the background, one per request at most) ask again: still one warning.
    await requests_until(
        printer, lambda: len(sim.requests_to("lan", IDENTITY)) >= 3, "the LAN probed again"
    )
    assert printer.route is Route.RELAY
    (warning,) = lan_warnings(caplog)
    assert "another printer" in warning
    assert_no_ids(caplog, sim)
    assert "printer_id" not in repr(printer)
    # Only probes reached the LAN, none with the printer's key.
    assert {r.path for r in sim.requests_to("lan")} == {"/", IDENTITY}
    assert [r for r in sim.requests_to("lan") if "X-Api-Key" in r.headers] == []


async def test_no_printer_id_on_the_lan_while_the_relay_has_one_keeps_the_relay(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    lan = await sim.start_lan()
    sim.state.lan_printer_id = None  # a device that answers "/" like the printer, 404 here
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=ROUTING)
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY
    (warning,) = lan_warnings(caplog)
    assert "no OctoEverywhere printer id" in warning
    assert_no_ids(caplog, sim)
    assert sim.requests_to("lan", "/api/version") == []


@pytest.mark.parametrize("lan_id", ["same", "other", None])
async def test_a_relay_without_a_printer_id_checks_the_answers_alone(
    oe: OctoEverywhere, sim: Simulator, lan_id: str | None
) -> None:
    # Moonraker, PrusaLink...: the relay tells no id (404), so "/" answering alike must do.
    relay_id = sim.state.printer_id
    sim.state.printer_id = None
    sim.state.lan_printer_id = {"same": relay_id, "other": "another", None: None}[lan_id]
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=ROUTING)
    await printer.get_json("/api/version")
    assert printer.route is Route.LAN
    assert sim.requests_to("lan", IDENTITY) == []  # nothing to compare it with


async def test_a_non_octoprint_platform_tells_no_id(sim: Simulator) -> None:
    sim.play("moonraker")
    lan = await sim.start_lan()
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, routing=ROUTING)
        await printer.get_json("/api/version")
        assert printer.route is Route.LAN
    assert len(sim.requests_to("relay", IDENTITY)) == 1  # a 404 there
    assert sim.requests_to("lan", IDENTITY) == []


async def test_an_identity_answer_too_large_or_redirected_is_no_id(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    lan = await sim.start_lan()
    filler = b" " * 8192
    body = b'{"PluginVersion": "4.1.0", "PrinterId": "%s"}' % sim.state.printer_id.encode()
    sim.fail(
        200,
        path=IDENTITY,
        origin="lan",
        times=1,
        body=filler + body,  # the right id, past the bounded read
        headers={"Content-Type": "application/json"},
    )
    sim.redirect(IDENTITY, sim.relay_url / IDENTITY[1:], origin="lan", times=1)
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=EVERY_TIME)
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY
    # The re-probes meet the redirect (not followed: the relay saw no second identity
    # request), then the printer's own answer.
    await requests_until(
        printer,
        lambda: printer.route is Route.LAN,
        "the LAN was not used after its identity answer came right",
    )
    assert len(sim.requests_to("lan", IDENTITY)) == 3
    assert len(sim.requests_to("relay", IDENTITY)) == 1


async def test_a_relay_that_cannot_tell_yet_is_asked_again(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    lan = await sim.start_lan()
    sim.fail(601, path=IDENTITY, origin="relay", times=1)  # the printer offline for a moment
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=EVERY_TIME)
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY  # not trusted without the relay's answer
    await requests_until(
        printer, lambda: printer.route is Route.LAN, "the relay's identity was not asked again"
    )
    assert len(sim.requests_to("relay", IDENTITY)) == 2


async def test_the_lan_is_checked_again_at_most_every_reprobe_interval(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=ROUTING)  # every 60 s
    for _ in range(5):
        await printer.get_json("/api/version")
    assert printer.route is Route.LAN
    assert len(sim.requests_to("lan", "/api/version")) == 5
    assert len(sim.requests_to("lan", IDENTITY)) == 1


async def test_the_lan_in_use_is_checked_again_and_stays_while_it_is_the_printer(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    printer = await on_the_lan(oe, sim, EVERY_TIME)
    await requests_until(
        printer, lambda: len(sim.requests_to("lan", IDENTITY)) >= 3, "the LAN checked again"
    )
    assert printer.route is Route.LAN
    assert sim.requests_to("relay", "/api/version") == []
    assert len(sim.requests_to("relay", IDENTITY)) == 1  # the reference is asked once
    assert lan_warnings(caplog) == []


@pytest.mark.parametrize("device", ["another printer", "no id"])
async def test_a_lan_device_that_changes_drops_to_the_relay(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture, device: str
) -> None:
    printer = await on_the_lan(oe, sim, EVERY_TIME)
    # Another device takes the address (a DHCP lease moved): it answers "/" alike.
    sim.state.lan_printer_id = f"{SECRET_MARKER}-printer-id-new" if device != "no id" else None
    await requests_until(printer, lambda: printer.route is Route.RELAY, "back on the relay")
    relay_before = len(sim.requests_to("relay", "/api/version"))
    await printer.get_json("/api/version")
    assert len(sim.requests_to("relay", "/api/version")) == relay_before + 1
    (warning,) = lan_warnings(caplog)
    assert ("another printer" if device != "no id" else "no OctoEverywhere printer id") in warning
    assert_no_ids(caplog, sim)
    # It stays on the relay while the device is not the printer (re-probes keep failing),
    # and comes back when the printer is there again.
    sim.state.lan_printer_id = sim.state.printer_id
    await requests_until(printer, lambda: printer.route is Route.LAN, "back on the LAN")
    assert len(lan_warnings(caplog)) == 1


async def test_a_check_in_flight_is_cancelled_on_close(sim: Simulator) -> None:
    lan = await sim.start_lan()
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, routing=EVERY_TIME)
        await printer.get_json("/api/version")
        assert printer.route is Route.LAN
        sim.state.latency = 3600.0  # every answer from now on hangs
        request = asyncio.create_task(printer.get_json("/api/version"))  # starts a check
        await eventually(lambda: len(sim.requests_to("lan", "/")) >= 2, "the check sent")
        assert [t for t in asyncio.all_tasks() if t.get_name() == "oe_async LAN re-probe"]
    with pytest.raises(oe_async.ClientClosedError):
        await request
    checks = [t for t in asyncio.all_tasks() if t.get_name() == "oe_async LAN re-probe"]
    assert checks == []


# ---------------------------------------------------------------- review findings (fail closed)

NESTED = b"[" * 4000  # under the bounded read; deeper than Python's JSON parser goes


async def test_a_nested_identity_answer_is_no_id_and_raises_nothing(
    oe: OctoEverywhere, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    # A device at the address answers the identity path with JSON nested past the parser's
    # recursion limit: that is no id (the relay stays), never a RecursionError for the app.
    json_type = {"Content-Type": "application/json"}
    fault = sim.fail(200, path=IDENTITY, origin="lan", body=NESTED, headers=json_type)
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=EVERY_TIME)
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY
    (warning,) = lan_warnings(caplog)
    assert "no OctoEverywhere printer id" in warning
    # The same answer to a check of the LAN in use drops it to the relay.
    sim.state.faults.remove(fault)
    await requests_until(printer, lambda: printer.route is Route.LAN, "on the LAN")
    sim.fail(200, path=IDENTITY, origin="lan", body=NESTED, headers=json_type)
    await requests_until(printer, lambda: printer.route is Route.RELAY, "back on the relay")


def a_router() -> Router:
    """A ``prefer_local`` router (no I/O: the tests hand it the probe) re-checking each time."""
    return Router(
        URL("https://relay.example"),
        URL("http://192.0.2.1/"),
        RoutePolicy.PREFER_LOCAL,
        RoutingOptions(reprobe_interval=0),
        lan_from_ip=False,
    )


async def test_a_probe_that_breaks_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    # Whatever a probe raises (a bug, an answer nobody foresaw), the LAN is not used and
    # the request goes on through the relay; the log names the error's type only.
    router = a_router()

    async def broken(url: URL) -> bool:
        raise RecursionError(f"{SECRET_MARKER} text from the device")

    assert await router.choose(broken, asyncio.create_task) is Route.RELAY
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "RecursionError" in text
    assert SECRET_MARKER not in text


async def test_a_lan_failure_during_a_check_is_not_undone_by_its_answer() -> None:
    router = a_router()

    async def up(url: URL) -> bool:
        return True

    assert await router.choose(up, asyncio.create_task) is Route.LAN
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_up(url: URL) -> bool:
        started.set()
        await release.wait()
        return True  # the LAN answered the check before a request failed on it

    checks: list[asyncio.Task[None]] = []

    def spawn(coro: Coroutine[Any, Any, None]) -> object:
        checks.append(asyncio.create_task(coro))
        return checks[-1]

    assert router.choose_now(slow_up, spawn) is Route.LAN  # starts a check
    await started.wait()
    router.lan_failed()  # a request could not connect meanwhile
    assert router.route is Route.RELAY
    release.set()
    await checks[0]
    assert router.route is Route.RELAY  # the older answer did not put it back


async def test_the_checks_answers_do_not_hide_the_lans_server_errors(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    # Requests on the LAN get 500s; the checks in between get the printer's own answers.
    # Three server errors in a row still give the LAN up: a check is not a request.
    printer = await on_the_lan(oe, sim, EVERY_TIME)
    sim.fail(500, path="/api/version", origin="lan")

    def checking() -> bool:
        return any(t.get_name() == "oe_async LAN re-probe" for t in asyncio.all_tasks())

    for _ in range(3):
        assert printer.route is Route.LAN
        with pytest.raises(oe_async.PrinterHTTPError):
            await printer.get_json("/api/version")
        await eventually(lambda: not checking(), "the check of the LAN done")
    assert printer.route is Route.RELAY


async def test_a_relay_identity_answer_that_is_not_final_is_asked_again(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    # A 429 from the relay is no "this printer tells no id": that would turn the identity
    # check off for the whole connection. The LAN here is another printer.
    lan = await sim.start_lan()
    sim.state.lan_printer_id = f"{SECRET_MARKER}-printer-id-another"
    sim.fail(429, path=IDENTITY, origin="relay", times=1)
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=EVERY_TIME)
    await printer.get_json("/api/version")
    assert printer.route is Route.RELAY
    await requests_until(
        printer, lambda: len(sim.requests_to("relay", IDENTITY)) >= 2, "the relay asked again"
    )
    await requests_until(
        printer, lambda: len(sim.requests_to("lan", IDENTITY)) >= 1, "the LAN's id compared"
    )
    assert printer.route is Route.RELAY
    assert sim.requests_to("lan", "/api/version") == []


async def test_a_changed_answer_to_slash_is_compared_with_a_fresh_one(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    # The printer's own "/" changes (a restart, a login page): the LAN answers unlike the
    # remembered reference once, the relay is asked again, and the LAN comes back.
    printer = await on_the_lan(oe, sim, EVERY_TIME)
    sim.fail(302, path="/", origin="lan", headers={"Location": "/login"})
    await requests_until(printer, lambda: printer.route is Route.RELAY, "on the relay")
    sim.fail(302, path="/", origin="relay", headers={"Location": "/login"})
    await requests_until(printer, lambda: printer.route is Route.LAN, "back on the LAN")
