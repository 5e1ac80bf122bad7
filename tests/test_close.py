"""Closing the client ends everything promptly, with one documented error, in both modes.

With an owned session a ``frames()`` loop used to hang for ever after ``close()``; with a
borrowed session it kept running; an interrupted download raised aiohttp's raw
``RuntimeError``. Now every stream, download, WebSocket and subscription in progress ends
within a second with :class:`~oe_async.ClientClosedError`, and every later call raises it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from oe_async import ClientClosedError, OctoEverywhere, PrinterConnection, SubscriptionState
from oe_async.testing import Simulator

from .helpers import EVENTUALLY, acquired_connections

Mode = str
#: Seconds close() may take to end a stream in progress: generous for a loaded machine, and
#: well under what a stream left running would take (30 s read timeouts, an 80 s download).
PROMPT = 10.0


@asynccontextmanager
async def client_in(mode: Mode, sim: Simulator) -> AsyncIterator[OctoEverywhere]:
    if mode == "owned":
        oe = sim.client()
        try:
            yield oe
        finally:
            await oe.close()
        return
    async with aiohttp.ClientSession() as session:
        oe = sim.client(session=session)
        try:
            yield oe
        finally:
            await oe.close()
        assert not session.closed  # borrowed: never closed by us
        assert acquired_connections(session) == 0


async def ends_on_close(
    oe: OctoEverywhere, started: asyncio.Event, work: Callable[[], Awaitable[object]]
) -> BaseException | None:
    """Run ``work`` until ``started`` is set, close the client, return what ``work`` raised."""
    task = asyncio.create_task(work())
    await asyncio.wait_for(started.wait(), EVENTUALLY)
    began = time.monotonic()
    await oe.close()
    done, _ = await asyncio.wait({task}, timeout=PROMPT)
    assert done, f"still running {PROMPT:g} s after close()"
    assert time.monotonic() - began < PROMPT + 0.5
    return task.exception()


MODES = ["owned", "borrowed"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_frames_loop_ends(sim: Simulator, mode: Mode) -> None:
    sim.state.webcam.fps = 30
    async with client_in(mode, sim) as oe:
        printer = oe.printer(sim.app_connection())
        started = asyncio.Event()

        async def watch() -> None:
            async with printer.webcam.frames(read_timeout=30) as frames:
                async for _ in frames:
                    started.set()

        error = await ends_on_close(oe, started, watch)
        assert isinstance(error, ClientClosedError)


@pytest.mark.parametrize("mode", MODES)
async def test_a_reconnecting_frames_loop_ends(sim: Simulator, mode: Mode) -> None:
    async with client_in(mode, sim) as oe:
        printer = oe.printer(sim.app_connection())
        started = asyncio.Event()

        async def watch() -> None:
            async with printer.webcam.frames(reconnect=True) as frames:
                async for _ in frames:
                    started.set()

        assert isinstance(await ends_on_close(oe, started, watch), ClientClosedError)


@pytest.mark.parametrize("mode", MODES)
async def test_a_download_ends(sim: Simulator, mode: Mode) -> None:
    sim.files.add_synthetic("big.bin", 512 * 1024**2)
    sim.state.transfer.trickle = (64 * 1024, 0.01)
    async with client_in(mode, sim) as oe:
        printer = oe.printer(sim.app_connection())
        started = asyncio.Event()

        async def fetch() -> None:
            async with printer.files.download("/downloads/files/local/big.bin") as chunks:
                async for _ in chunks:
                    started.set()

        assert isinstance(await ends_on_close(oe, started, fetch), ClientClosedError)


@pytest.mark.parametrize("mode", MODES)
async def test_a_websocket_ends(sim: Simulator, mode: Mode) -> None:
    async with client_in(mode, sim) as oe:
        printer = oe.printer(sim.app_connection())
        started = asyncio.Event()

        async def listen() -> None:
            async with printer.websocket.connect("/sockjs/websocket") as ws:
                async for _ in ws:
                    started.set()

        assert isinstance(await ends_on_close(oe, started, listen), ClientClosedError)


@pytest.mark.parametrize("mode", MODES)
async def test_a_subscription_stops_with_the_error(sim: Simulator, mode: Mode) -> None:
    async with client_in(mode, sim) as oe:
        printer = oe.printer(sim.app_connection())
        states: list[SubscriptionState] = []
        sub = printer.websocket.subscribe(
            "/sockjs/websocket", lambda m: None, on_state=lambda e: states.append(e.state)
        )
        await sub.wait_connected(10)
        await oe.close()
        assert sub.state is SubscriptionState.STOPPED
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(sub.wait(), PROMPT)


async def test_every_call_after_close_raises_it(
    printer: PrinterConnection, oe: OctoEverywhere
) -> None:
    await oe.close()
    with pytest.raises(ClientClosedError):
        await printer.get_json("/api/version")
    with pytest.raises(ClientClosedError):
        await printer.app_api.info()
    with pytest.raises(ClientClosedError):
        async with printer.webcam.frames() as frames:
            await anext(frames)
    with pytest.raises(ClientClosedError):
        printer.websocket.subscribe("/websocket", lambda m: None)
