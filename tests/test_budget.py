"""The connection budget: streams never starve requests, and no wait for a connection is silent.

Issue 14: with aiohttp's one default pool, 150 webcam streams left 50 streams without a
frame and a status GET waiting until its timeout, with nothing saying why. Now an owned
session has a pool for requests and one for streams; on a borrowed session streams leave
``ConnectionBudget.reserve`` connections free; every wait for a connection ends in
``ConnectionPoolExhaustedError`` naming the pool, its limit and how many were busy.
Also here: the whole-call deadline (14.4 / 19.7) and the App API pre-check outage (14.3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import pytest

from oe_async import (
    CommunicationError,
    ConnectionBudget,
    ConnectionPoolExhaustedError,
    FrameStream,
    InvalidArgumentError,
    OctoEverywhere,
    PrinterConnection,
    PrinterHTTPError,
    RequestTimeoutError,
    RetryPolicy,
)
from oe_async.app_api import PRECHECK_TIMEOUT
from oe_async.testing import Fault, Simulator

from .helpers import EVENTUALLY, Blackhole, eventually

STATUS = "/api/printer"


@asynccontextmanager
async def streams(printer: PrinterConnection, count: int) -> AsyncIterator[list[FrameStream]]:
    """Hold ``count`` webcam streams open, each having delivered one frame."""
    async with AsyncExitStack() as stack:
        held = []
        for _ in range(count):
            frames = await stack.enter_async_context(printer.webcam.frames())
            await asyncio.wait_for(anext(frames), 10)
            held.append(frames)
        yield held


def test_budget_validates_its_fields() -> None:
    for bad in ({"requests": 0}, {"streams": -1}, {"reserve": -1}, {"pool_timeout": 0}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            ConnectionBudget(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="connections"):
        OctoEverywhere("app", connections=5)  # type: ignore[arg-type]


async def test_owned_streams_cannot_starve_requests(sim: Simulator) -> None:
    budget = ConnectionBudget(requests=2, streams=2, pool_timeout=0.5)
    async with sim.client(connections=budget) as oe:
        printer = oe.printer(sim.app_connection())
        async with streams(printer, 2):
            # Both stream connections are held; requests have their own pool.
            # (A request waiting on the stream pool would raise after pool_timeout.)
            results = await asyncio.gather(*(printer.get_json(STATUS) for _ in range(6)))
            assert all(isinstance(r, dict) for r in results)
            # A third stream waits pool_timeout (not for ever), then says why.
            began = time.monotonic()
            with pytest.raises(ConnectionPoolExhaustedError) as info:
                async with printer.webcam.frames() as frames:
                    await anext(frames)
            assert 0.4 < time.monotonic() - began < EVENTUALLY
            err = info.value
            assert (err.pool, err.limit, err.busy) == ("streams", 2, 2)
            assert "streams pool allows 2 and 2 were busy" in str(err)
            assert isinstance(err, CommunicationError)
            assert err.temporary


async def test_owned_stream_room_frees_when_a_stream_ends(sim: Simulator) -> None:
    budget = ConnectionBudget(streams=1, pool_timeout=EVENTUALLY)
    async with sim.client(connections=budget) as oe:
        printer = oe.printer(sim.app_connection())
        holding = asyncio.Event()

        async def hold_then_leave() -> None:
            async with streams(printer, 1):
                holding.set()
                await asyncio.sleep(0.3)  # the other stream waits meanwhile

        holder = asyncio.create_task(hold_then_leave())
        await holding.wait()
        # No room until the holder leaves; then it opens (no ConnectionPoolExhaustedError).
        async with printer.webcam.frames() as frames:
            await asyncio.wait_for(anext(frames), EVENTUALLY)
        await holder


async def test_owned_request_pool_wait_is_bounded(sim: Simulator) -> None:
    budget = ConnectionBudget(requests=1, pool_timeout=0.3)
    async with sim.client(connections=budget, retry=RetryPolicy.never()) as oe:
        printer = oe.printer(sim.app_connection())
        sim.state.latency = 3
        slow = asyncio.create_task(printer.get_json(STATUS))
        await eventually(lambda: sim.requests_to("relay", STATUS), "the slow GET holds the slot")
        began = time.monotonic()
        with pytest.raises(ConnectionPoolExhaustedError) as info:
            await printer.get_json(STATUS)
        assert time.monotonic() - began < 2.5  # pool_timeout, not the slow call's 3 s
        assert (info.value.pool, info.value.limit, info.value.busy) == ("requests", 1, 1)
        assert isinstance(await slow, dict)


async def test_borrowed_session_keeps_a_reserve_for_requests(sim: Simulator) -> None:
    connector = aiohttp.TCPConnector(limit=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        budget = ConnectionBudget(reserve=1, pool_timeout=0.5)
        async with sim.client(session=session, connections=budget) as oe:
            printer = oe.printer(sim.app_connection())
            async with streams(printer, 2):
                # Streams may use 3 - 1 = 2 of the borrowed pool: the third gets the error...
                with pytest.raises(ConnectionPoolExhaustedError) as info:
                    async with printer.webcam.frames() as frames:
                        await anext(frames)
                assert (info.value.pool, info.value.limit, info.value.busy) == ("session", 2, 2)
                assert "borrowed session's pool (streams may use all but 1 of it)" in str(
                    info.value
                )
                # ...and requests still go through the reserved connection.
                for _ in range(3):
                    assert isinstance(await printer.get_json(STATUS), dict)


async def test_websockets_count_as_streams(sim: Simulator) -> None:
    budget = ConnectionBudget(streams=1, pool_timeout=0.3)
    async with sim.client(connections=budget) as oe:
        printer = oe.printer(sim.app_connection())
        async with printer.websocket.connect("/sockjs/websocket"):
            with pytest.raises(ConnectionPoolExhaustedError):
                async with printer.webcam.frames() as frames:
                    await anext(frames)
            assert isinstance(await printer.get_json(STATUS), dict)
        async with printer.webcam.frames() as frames:  # room again
            await asyncio.wait_for(anext(frames), 10)


# ---------------------------------------------------------------------- call deadlines


async def test_timeout_is_the_whole_calls_deadline() -> None:
    """19.7: get_json(timeout=1) with retries used to take 3 x 1 s + backoff."""
    async with Blackhole() as hole, Simulator() as sim:
        retry = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1)
        async with sim.client(retry=retry) as oe:
            printer = oe.printer(sim.app_connection(url=str(hole.url)))
            began = time.monotonic()
            with pytest.raises(RequestTimeoutError):
                await printer.get_json(STATUS, timeout=2)
            # 2 s honoured; a retry given the whole timeout again makes it 4 s or more.
            assert time.monotonic() - began < 3


async def test_the_deadline_leaves_no_time_for_a_hopeless_retry(sim: Simulator) -> None:
    sim.state.faults.append(_fault(503, times=1, headers={"Retry-After": "50"}))
    async with sim.client(retry=RetryPolicy(attempts=3, max_retry_after=60)) as oe:
        printer = oe.printer(sim.app_connection())
        began = time.monotonic()
        with pytest.raises(PrinterHTTPError):  # 503: not retried into a 50 s wait
            await printer.get_json(STATUS, timeout=20)
        assert time.monotonic() - began < 10  # at once, not at the 20 s deadline


def _fault(status: int, **kwargs: object) -> Fault:
    return Fault(status=status, path=STATUS, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- App API outage


async def test_silent_app_api_does_not_hold_up_transfers(sim: Simulator) -> None:
    """14.3: 92 s for a 4-byte upload while the App API accepted and never answered."""
    async with Blackhole() as app_api:
        oe = OctoEverywhere(sim.app_id, app_api_url=app_api.url, allow_insecure_loopback=True)
        async with oe:
            printer = oe.printer(sim.app_connection())
            began = time.monotonic()
            await printer.files.upload("/api/files/local", b"G28\n", filename="a.gcode")
            first = time.monotonic() - began
            began = time.monotonic()
            await printer.files.upload("/api/files/local", b"G28\n", filename="b.gcode")
            second = time.monotonic() - began
        assert first < EVENTUALLY, first  # one PRECHECK_TIMEOUT (1.5 s) wait; it was 92 s
        assert second < PRECHECK_TIMEOUT, second  # the failure is remembered: no second wait
        assert app_api.connections == 1


async def test_limits_can_be_given_or_the_precheck_skipped(sim: Simulator) -> None:
    async with Blackhole() as app_api:
        oe = OctoEverywhere(
            sim.app_id,
            app_api_url=app_api.url,
            allow_insecure_loopback=True,
            precheck_limits=False,
        )
        async with oe:
            printer = oe.printer(sim.app_connection())
            await printer.files.upload("/api/files/local", b"G28\n", filename="a.gcode")
            assert app_api.connections == 0
        async with sim.client() as oe:
            printer = oe.printer(sim.app_connection())
            printer.app_api.limits = sim.state.limits
            await printer.files.upload("/api/files/local", b"G28\n", filename="a.gcode")
            assert not [r for r in sim.requests if r.path.endswith("/info")]
            with pytest.raises(InvalidArgumentError):
                printer.app_api.limits = "big"  # type: ignore[assignment]


async def test_unverified_tls_session_is_refused() -> None:
    """19.8: a borrowed ssl=False session would hand relay credentials to anyone."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        with pytest.raises(InvalidArgumentError, match="does not verify TLS"):
            OctoEverywhere("app", session=session)
        oe = OctoEverywhere("app", session=session, allow_unverified_tls=True)
        await oe.close()
