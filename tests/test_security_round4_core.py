"""Security and reliability round 4 (issue 29), the close, deadline and download items.

Each test fails on the code before the fix and runs against real loopback servers. A dead
link (SYN never answered) is a listener whose accept queue is full
(:class:`oe_async.testing.hostile.HostileServer` ``no_accept``: Linux drops the SYN, so
the client waits in ``connect``); a relay that accepted but does not answer is its
``silent`` behaviour. Neither needs root nor leaves loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager

import aiohttp
import psutil
import pytest

from oe_async import (
    ClientClosedError,
    ConnectionBudget,
    ConnectionPoolExhaustedError,
    OctoEverywhere,
    PrinterConnection,
    RequestTimeoutError,
    RetryPolicy,
    SubscriptionState,
)
from oe_async.testing import Simulator
from oe_async.testing.hostile import Behaviour, HostileServer

from .helpers import acquired_connections

MODES = ["owned", "borrowed"]
#: close() must end what waits within this (seconds).
PROMPT = 1.0
#: Loose bound for anything that must merely happen (not a timing claim).
EVENTUALLY = 10.0


@asynccontextmanager
async def client_in(
    mode: str, sim: Simulator, **kwargs: object
) -> AsyncIterator[tuple[OctoEverywhere, aiohttp.ClientSession]]:
    """A client on an owned or a borrowed session; yields it and the session it uses."""
    if mode == "owned":
        oe = sim.client(**kwargs)  # type: ignore[arg-type]
        try:
            yield oe, oe.session
        finally:
            await oe.close()
        return
    connector = kwargs.pop("connector", None)
    assert connector is None or isinstance(connector, aiohttp.BaseConnector)
    async with aiohttp.ClientSession(connector=connector) as session:
        oe = sim.client(session=session, **kwargs)
        try:
            yield oe, session
        finally:
            await oe.close()
        assert not session.closed  # borrowed: never closed by us
        assert acquired_connections(session) == 0


async def until(condition: Callable[[], bool], what: str, bound: float = EVENTUALLY) -> None:
    """Poll for ``condition`` (a state, not a time) with a generous bound."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def connecting_to(port: int) -> int:
    """Our TCP connections to ``port`` still waiting for the SYN to be answered."""
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_SYN_SENT
    )


async def syn_sent(port: int, count: int = 1) -> None:
    """Wait until ``count`` connects to ``port`` hang on an unanswered SYN."""
    loop = asyncio.get_running_loop()
    end = loop.time() + EVENTUALLY
    while await asyncio.to_thread(connecting_to, port) < count:
        if loop.time() > end:
            raise AssertionError(f"no connect to port {port} waiting for its SYN")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------ item 1: close() from a callback


@pytest.mark.parametrize("mode", MODES)
async def test_close_from_on_message_returns_and_closes_everything(
    sim: Simulator, mode: str
) -> None:
    """It never returned: close() cancelled and gathered its own task (RecursionError)."""
    async with client_in(mode, sim) as (oe, session):
        printer = oe.printer(sim.app_connection())
        returned = asyncio.Event()

        async def on_message(_: aiohttp.WSMessage) -> None:
            await oe.close()
            returned.set()

        sub = printer.websocket.subscribe("/sockjs/websocket", on_message)
        await asyncio.wait_for(returned.wait(), EVENTUALLY)
        assert oe.closed
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(sub.wait(), PROMPT)
        assert sub.state is SubscriptionState.STOPPED
        if mode == "owned":
            assert session.closed
        else:
            await until(lambda: acquired_connections(session) == 0, "the socket released")


@pytest.mark.parametrize("mode", MODES)
async def test_close_from_on_state_stopped_after_a_604(sim: Simulator, mode: str) -> None:
    sim.fail(604, path="/sockjs/websocket", origin="relay")
    async with client_in(mode, sim) as (oe, session):
        printer = oe.printer(sim.app_connection())
        returned = asyncio.Event()

        async def on_state(event: object) -> None:
            if getattr(event, "state", None) is SubscriptionState.STOPPED:
                await oe.close()
                returned.set()

        sub = printer.websocket.subscribe("/sockjs/websocket", lambda _: None, on_state=on_state)
        await asyncio.wait_for(returned.wait(), EVENTUALLY)
        await asyncio.wait_for(asyncio.wait({asyncio.ensure_future(sub.wait())}), PROMPT)
        assert oe.closed
        if mode == "owned":
            assert session.closed


@pytest.mark.parametrize("mode", MODES)
async def test_close_from_the_gadget_pollers_callback(sim: Simulator, mode: str) -> None:
    async with client_in(mode, sim) as (oe, session):
        printer = oe.printer(sim.app_connection())
        returned = asyncio.Event()

        async def on_status(_: object) -> None:
            await oe.close()
            returned.set()

        poller = printer.gadget.poller(on_status)
        await asyncio.wait_for(returned.wait(), EVENTUALLY)
        await asyncio.wait_for(poller.wait(), PROMPT)
        assert poller.done
        assert oe.closed
        if mode == "owned":
            assert session.closed


async def test_a_second_close_waits_for_the_first(sim: Simulator) -> None:
    """It returned at once, before the first close() had stopped anything."""
    oe = sim.client()
    printer = oe.printer(sim.app_connection())
    sub = printer.websocket.subscribe("/sockjs/websocket", lambda _: None)
    await sub.wait_connected(EVENTUALLY)
    first = asyncio.create_task(oe.close())
    await asyncio.sleep(0)  # the first close() has begun
    await oe.close()
    assert sub.state is SubscriptionState.STOPPED
    await first


async def test_a_cancelled_close_still_closes(sim: Simulator) -> None:
    oe = sim.client()
    session = oe.session
    printer = oe.printer(sim.app_connection())
    sub = printer.websocket.subscribe("/sockjs/websocket", lambda _: None)
    await sub.wait_connected(EVENTUALLY)
    closing = asyncio.create_task(oe.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await oe.close()  # returns when the first one's work is done
    assert session.closed
    assert sub.state is SubscriptionState.STOPPED


# ------------------------------------------------------------ item 2: close() ends waiting calls


async def _get_json(printer: PrinterConnection) -> object:
    return await printer.get_json("/api/printer", timeout=60)


async def _snapshot(printer: PrinterConnection) -> object:
    return await printer.webcam.snapshot()


async def _download(printer: PrinterConnection) -> object:
    async with printer.files.download("/downloads/files/local/a.gcode") as chunks:
        return [chunk async for chunk in chunks]


async def _frames(printer: PrinterConnection) -> object:
    async with printer.webcam.frames(read_timeout=60) as frames:
        return await anext(frames)


async def _websocket(printer: PrinterConnection) -> object:
    async with printer.websocket.connect("/sockjs/websocket", handshake_timeout=60) as ws:
        return await ws.receive()


CALLS: dict[str, Callable[[PrinterConnection], Coroutine[None, None, object]]] = {
    "get_json": _get_json,
    "snapshot": _snapshot,
    "download": _download,
    "frames": _frames,
    "websocket": _websocket,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("behaviour", ["silent", "no_accept"])
async def test_close_ends_every_call_still_waiting(
    sim: Simulator, mode: str, behaviour: Behaviour
) -> None:
    """Calls on a silent relay (borrowed) or a dead link (both) ran on for 6-15 s after close()."""
    async with HostileServer(behaviour) as server, client_in(mode, sim) as (oe, _):
        printer = oe.printer(sim.app_connection(url=server.url))
        tasks = {name: asyncio.create_task(call(printer)) for name, call in CALLS.items()}
        if behaviour == "silent":
            await until(lambda: server.connections >= len(CALLS), "every call connected")
        else:
            assert server.url.port is not None
            await syn_sent(server.url.port, len(CALLS))
        began = time.monotonic()
        await oe.close()
        _, pending = await asyncio.wait(tasks.values(), timeout=PROMPT)
        late = [name for name, task in tasks.items() if task in pending]
        for task in pending:
            task.cancel()
        assert not late, f"still running {PROMPT} s after close(): {late}"
        assert time.monotonic() - began < PROMPT + 0.5
        for name, task in tasks.items():
            assert isinstance(task.exception(), ClientClosedError), name


async def test_a_cancel_of_the_callers_own_still_passes_through(sim: Simulator) -> None:
    """close() turns only its own interruption into ClientClosedError."""
    async with HostileServer("silent") as server, client_in("borrowed", sim) as (oe, _):
        printer = oe.printer(sim.app_connection(url=server.url))
        task = asyncio.create_task(printer.get_json("/api/printer", timeout=60))
        await until(lambda: server.connections >= 1, "the call connected")
        task.cancel()
        await oe.close()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_call_closed_inside_a_timeout_block_leaves_the_block_working(
    sim: Simulator,
) -> None:
    """The task's cancel count is restored: an enclosing ``asyncio.timeout`` still works."""
    async with HostileServer("silent") as server, client_in("borrowed", sim) as (oe, _):
        printer = oe.printer(sim.app_connection(url=server.url))
        outcome: list[str] = []

        async def caller() -> None:
            async with asyncio.timeout(EVENTUALLY):
                with contextlib.suppress(ClientClosedError):
                    await printer.get_json("/api/printer", timeout=60)
                outcome.append("closed")
                current = asyncio.current_task()
                assert current is not None
                outcome.append(f"cancelling={current.cancelling()}")

        task = asyncio.create_task(caller())
        await until(lambda: server.connections >= 1, "the call connected")
        await oe.close()
        await asyncio.wait_for(task, PROMPT)
        assert outcome == ["closed", "cancelling=0"]


# ------------------------------------------------------------ item 10: no whole-second rounding


async def test_a_deadline_over_5_s_is_not_rounded_up(sim: Simulator) -> None:
    """aiohttp rounded timeouts over 5 s up to the next whole second of the loop clock."""
    async with HostileServer("no_accept") as server, sim.client() as oe:
        printer = oe.printer(sim.app_connection(url=server.url))
        loop = asyncio.get_running_loop()
        # A deadline 0.05 s past a whole second of the loop clock: rounding adds 0.95 s.
        now = loop.time()
        timeout = 6.05 - (now - math.floor(now))
        began = loop.time()
        with pytest.raises(RequestTimeoutError):
            await printer.get_json("/api/printer", timeout=timeout, retry=RetryPolicy.never())
        took = loop.time() - began
        assert timeout - 0.05 <= took < timeout + 0.4, (timeout, took)


# ------------------------------------------------------------ item 18: the pool wait in the deadline


@pytest.mark.parametrize("mode", MODES)
async def test_the_pool_wait_is_inside_the_calls_deadline(sim: Simulator, mode: str) -> None:
    """A call that waited for a pooled connection then got its whole timeout again."""
    kwargs: dict[str, object] = {"retry": RetryPolicy.never()}
    if mode == "owned":
        kwargs["connections"] = ConnectionBudget(requests=1)
    else:
        kwargs["connector"] = aiohttp.TCPConnector(limit=1)
    async with HostileServer("silent") as server, client_in(mode, sim, **kwargs) as (oe, _):
        printer = oe.printer(sim.app_connection(url=server.url))
        loop = asyncio.get_running_loop()
        began = loop.time()
        first = asyncio.create_task(printer.get_json("/api/printer", timeout=1.0))
        await until(lambda: server.connections >= 1, "the first call holds the connection")
        second = asyncio.create_task(printer.get_json("/api/printer", timeout=1.6))
        for task in (first, second):
            with pytest.raises((RequestTimeoutError, ConnectionPoolExhaustedError)):
                await task
        took = loop.time() - began
        # The second call waited ~1 s for the connection: it must still end at 1.6 s,
        # not 1 s + 1.6 s.
        assert took < 1.6 + 0.4, took
        assert isinstance(second.exception(), RequestTimeoutError)
