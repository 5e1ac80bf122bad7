"""Gadget status and the polling helper (under a fake clock)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import attrs
import pytest
from syrupy.assertion import SnapshotAssertion

import oe_async
from oe_async import GadgetColor, GadgetPoller, GadgetState, GadgetStatus, PrinterConnection
from oe_async._convert import structure
from oe_async.testing import Simulator


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let the event loop run


def test_decodes_the_example(snapshot: SnapshotAssertion) -> None:
    data = json.loads((Path(__file__).parent / "fixtures" / "gadget_spec_example.json").read_text())
    status = structure(data, GadgetStatus, what="x")
    assert status.state is GadgetState.ACTIVE
    assert status.status_color is GadgetColor.GREEN
    assert attrs.asdict(status) == snapshot


def test_unknown_values_do_not_break_decoding() -> None:
    status = structure({"State": 9, "StatusColor": "purple"}, GadgetStatus, what="x")
    assert status.state is GadgetState.UNKNOWN
    assert status.status_color is GadgetColor.UNKNOWN


async def test_gadget_status_against_the_simulator(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.gadget.state = 4
    sim.state.gadget.rating = 2
    sim.state.gadget.status_color = "r"
    status = await printer.gadget.status()
    assert status.state is GadgetState.PAUSED_DUE_TO_FAILURE
    assert status.rating == 2
    request = sim.requests_to("app_api", "/api/gadget/*")[0]
    assert request.method == "POST"
    assert request.headers["AppToken"] == sim.app_token


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (601, oe_async.PrinterOfflineError),
        (604, oe_async.AppConnectionRevokedError),
        (610, oe_async.PluginUpdateRequiredError),
        (611, oe_async.NoBetaAccessError),
    ],
)
async def test_gadget_errors(
    printer: PrinterConnection, sim: Simulator, status: int, error: type
) -> None:
    sim.fail(status, origin="app_api", path="/api/gadget/*")
    with pytest.raises(error):
        await printer.gadget.status()


async def _poll_for(poller: GadgetPoller, clock: FakeClock, seconds: float) -> None:
    start = clock.now
    while clock.now - start < seconds:
        await asyncio.sleep(0)
        if poller.done:
            break


async def test_the_poller_never_polls_faster_than_every_10_s(
    printer: PrinterConnection, sim: Simulator
) -> None:
    clock = FakeClock()
    call_times: list[float] = []
    sim.state.gadget.state = 3  # active: the fastest polling there is

    def record(status: GadgetStatus) -> None:
        call_times.append(clock.now)

    # Ask for 1 s: the helper must raise it to 10 s.
    poller = printer.gadget.poller(record, interval=1.0, clock=clock, sleep=clock.sleep)
    await _poll_for(poller, clock, 120)
    await poller.close()
    gaps = [b - a for a, b in itertools.pairwise(call_times)]
    assert len(call_times) >= 10
    assert min(gaps) >= 10.0
    assert len(sim.requests_to("app_api", "/api/gadget/*")) == len(call_times)


async def test_two_pollers_share_the_per_connection_floor(
    printer: PrinterConnection, sim: Simulator
) -> None:
    clock = FakeClock()
    call_times: list[float] = []
    first = printer.gadget.poller(
        lambda s: call_times.append(clock.now), clock=clock, sleep=clock.sleep
    )
    second = printer.gadget.poller(
        lambda s: call_times.append(clock.now), clock=clock, sleep=clock.sleep
    )
    await _poll_for(first, clock, 100)
    await first.close()
    await second.close()
    call_times.sort()
    assert all(b - a >= 10.0 - 1e-9 for a, b in itertools.pairwise(call_times))


async def test_the_poller_backs_off_when_idle_and_stops_when_hidden(
    printer: PrinterConnection, sim: Simulator
) -> None:
    clock = FakeClock()
    visible = [True]
    sim.state.gadget.state = 2  # idle: no print
    calls: list[float] = []
    poller = printer.gadget.poller(
        lambda s: calls.append(clock.now),
        is_visible=lambda: visible[0],
        idle_interval=60,
        max_idle_interval=240,
        clock=clock,
        sleep=clock.sleep,
    )
    await _poll_for(poller, clock, 1000)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[:3] == [60, 120, 240]
    assert max(gaps) == 240
    visible[0] = False
    before = len(calls)
    await _poll_for(poller, clock, 2000)
    assert len(calls) == before  # not visible: no calls at all
    await poller.close()


async def test_the_poller_stops_on_a_permanent_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    clock = FakeClock()
    sim.revoke()
    poller = printer.gadget.poller(lambda s: None, clock=clock, sleep=clock.sleep)
    with pytest.raises(oe_async.AppConnectionRevokedError):
        await asyncio.wait_for(poller.wait(), 5)


async def test_the_poller_rides_out_temporary_errors(
    printer: PrinterConnection, sim: Simulator
) -> None:
    clock = FakeClock()
    # Four 601s: the first poll's three funnel attempts all fail, the second poll succeeds.
    sim.fail(601, origin="app_api", path="/api/gadget/*", times=4)
    statuses: list[GadgetStatus] = []
    poller = printer.gadget.poller(statuses.append, clock=clock, sleep=clock.sleep)
    while not statuses:
        await asyncio.sleep(0)
    await poller.close()
    assert poller.calls == 2
    assert len(sim.requests_to("app_api", "/api/gadget/*")) == 5
    assert clock.sleeps[0] >= 10.0  # the retry after a failed poll still respects the floor
