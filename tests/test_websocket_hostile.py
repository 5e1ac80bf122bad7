"""Hostile WebSocket servers: floods, deadlines, endless closes, bad JSON, 6xx off the relay.

The servers run in a thread of their own (tests/ws_hostile.py), so the client loop's CPU time
(``time.thread_time()``) and its stalls are the client's alone.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, RoutingOptions
from oe_async._http import transport_error
from oe_async.testing import Simulator
from oe_async.websocket import CLOSE_TIMEOUT, MAX_CONTROL_FRAMES_PER_SECOND, PrinterWebSocket

from .helpers import acquired_connections
from .ws_hostile import OP_PONG, HostileWebSocket, ping, text

#: 500 KB of empty pings, as in the review (issue 19, finding 1).
FLOOD = ping() * 250_000
#: Why the flood tests judge what the wrapper did, not how long the loop stalled: one socket
#: read is parsed by aiohttp at once, and on a loaded machine a slow reader finds more of the
#: flood waiting (up to 256 KiB: 128,000 pings). Measured there: 0.1-1.2 s of loop CPU in one
#: read, as much as before the fix (1.2-2.6 s), though no ping past the bound was answered.
#: The stall target (< 50 ms, the server in another process) is benchmarks/ws_flood.py's;
#: the figures still go to the reliability report.
FLOOD_NOTE = "pongs bounded; stall measured in benchmarks/ws_flood.py"


@pytest_asyncio.fixture
async def oe_once(sim: Simulator) -> AsyncIterator[OctoEverywhere]:
    async with sim.client(retry=oe_async.RetryPolicy(attempts=1)) as client:
        yield client


class LagProbe:
    """The longest the event loop went without running a 1 ms sleeper, and CPU used meanwhile.

    ``max_lag`` is the longest gap in wall time, ``max_lag_cpu`` in the loop thread's CPU
    time (what the code run between two ticks cost, whatever the machine's load).
    """

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.max_lag_cpu = 0.0
        self.cpu = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last, last_cpu = loop.time(), time.thread_time()
        while not self._stop.is_set():
            await asyncio.sleep(0.001)
            now, now_cpu = loop.time(), time.thread_time()
            self.max_lag = max(self.max_lag, now - last)
            self.max_lag_cpu = max(self.max_lag_cpu, now_cpu - last_cpu)
            last, last_cpu = now, now_cpu

    async def measure(self, work: Callable[[], Awaitable[Any]]) -> BaseException | None:
        """Run ``work`` with the collector off: its pauses depend on the whole test process's
        heap, not on the code measured (conftest's slow-callback report separates them too)."""
        gc.collect()
        gc.disable()
        try:
            return await self._measure(work)
        finally:
            gc.enable()

    async def _measure(self, work: Callable[[], Awaitable[Any]]) -> BaseException | None:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.005)
        cpu = time.thread_time()
        error: BaseException | None = None
        try:
            await work()
        except Exception as err:
            error = err
        self.cpu = time.thread_time() - cpu
        self._stop.set()
        await self._task
        return error


class _FunnelStub:
    """What PrinterWebSocket asks of its funnel, for a socket opened with autoping=False here."""

    app_id = "app-id"
    client_closed = False

    @staticmethod
    def error_for(err: BaseException, method: str, path: str) -> oe_async.OctoEverywhereError:
        return transport_error(err, method, path)


async def test_a_ping_flood_ends_in_a_typed_error_without_stalling_the_loop(
    reliability_report: dict[str, Any],
) -> None:
    """Finding 19.1 at the wrapper, over a socket that leaves pings to it (autoping=False)."""
    probe = LagProbe()
    async with (
        HostileWebSocket(on_open=FLOOD + text('{"late": true}')) as server,
        aiohttp.ClientSession() as session,
    ):
        raw = await session.ws_connect(server.url / "websocket", autoping=False)
        ws = PrinterWebSocket(raw, path="/websocket", funnel=_FunnelStub())  # type: ignore[arg-type]
        error = await probe.measure(ws.receive)
        assert isinstance(error, oe_async.UnexpectedResponseError)
        assert "pings/pongs" in str(error)
        assert ws.closed
        assert raw.close_code is not None
        assert acquired_connections(session) == 0
        # Before the fix every one of the 250,000 pings got its pong (see FLOOD_NOTE).
        assert server.received.count(OP_PONG) <= MAX_CONTROL_FRAMES_PER_SECOND
    reliability_report.setdefault("websocket", {})["ping_flood"] = {
        "bytes": len(FLOOD),
        "cpu": probe.cpu,
        "max_lag": probe.max_lag,
        "max_lag_cpu": probe.max_lag_cpu,
        "pongs": server.received.count(OP_PONG),
        "note": FLOOD_NOTE,
    }


async def test_pings_within_the_bound_are_answered(sim: Simulator) -> None:
    """A server that pings (a burst below the bound) gets its pongs and the next message."""
    burst = ping(b"hi") * (MAX_CONTROL_FRAMES_PER_SECOND // 2)
    async with (
        HostileWebSocket(on_open=burst + text('{"a": 1}')) as server,
        aiohttp.ClientSession() as session,
    ):
        raw = await session.ws_connect(server.url / "websocket", autoping=False)
        ws = PrinterWebSocket(raw, path="/websocket", funnel=_FunnelStub())  # type: ignore[arg-type]
        assert await ws.receive_json(timeout=5) == {"a": 1}
        await ws.close()
        pongs = server.received.count(0xA)
        assert pongs == MAX_CONTROL_FRAMES_PER_SECOND // 2


async def test_a_ping_flood_through_connect(sim: Simulator, oe_once: OctoEverywhere) -> None:
    probe = LagProbe()
    async with HostileWebSocket(on_open=FLOOD + text("{}")) as server:
        printer = oe_once.printer(sim.app_connection(url=server.url))

        async def work() -> None:
            async with printer.websocket.connect("/websocket") as ws:
                await ws.receive()

        error = await probe.measure(work)
        assert isinstance(error, oe_async.UnexpectedResponseError)
        assert acquired_connections(oe_once) == 0
        assert server.received.count(OP_PONG) <= MAX_CONTROL_FRAMES_PER_SECOND


@pytest.mark.parametrize("heartbeat", [None, 30.0])
@pytest.mark.parametrize("where", ["receive", "connect"])
async def test_receive_timeout_is_a_deadline_for_a_message(
    sim: Simulator, oe_once: OctoEverywhere, heartbeat: float | None, where: str
) -> None:
    """Finding 19.6: pings every 50 ms, our pongs never read; the deadline still holds."""
    deadline = 0.5
    async with HostileWebSocket(every=ping(), interval=0.05, read=False) as server:
        printer = oe_once.printer(sim.app_connection(url=server.url))
        options = {"receive_timeout": deadline} if where == "connect" else {}
        async with printer.websocket.connect("/websocket", heartbeat=heartbeat, **options) as ws:
            started = time.monotonic()
            with pytest.raises(oe_async.RequestTimeoutError, match="no message within"):
                if where == "connect":
                    await ws.receive()
                else:
                    await ws.receive(timeout=deadline)
            elapsed = time.monotonic() - started
    # Held, where a deadline restarted by each ping never ends (slack for a busy machine).
    assert deadline <= elapsed < deadline + 4.5


async def test_a_bad_timeout_is_refused(printer: PrinterConnection) -> None:
    async with printer.websocket.connect("/websocket") as ws:
        with pytest.raises(oe_async.InvalidArgumentError, match="timeout"):
            await ws.receive(timeout=-1)
    with pytest.raises(oe_async.InvalidArgumentError, match="receive_timeout"):
        async with printer.websocket.connect("/websocket", receive_timeout=0):
            pass


async def test_leaving_connect_is_bounded_whatever_the_server_does(
    sim: Simulator, oe_once: OctoEverywhere, reliability_report: dict[str, Any]
) -> None:
    """Finding 19.9: the server ignores our close and keeps talking (each frame used to
    restart aiohttp's 10 s close wait)."""
    async with HostileWebSocket(every=text('{"chatty": 1}'), interval=0.2, answer_close=False) as (
        server
    ):
        printer = oe_once.printer(sim.app_connection(url=server.url))
        async with printer.websocket.connect("/websocket") as ws:
            assert await ws.receive_json(timeout=5) == {"chatty": 1}
            started = time.monotonic()
        elapsed = time.monotonic() - started
        assert server.close_seen.is_set()  # our close frame was sent
        assert ws.closed
        assert acquired_connections(oe_once) == 0
    reliability_report.setdefault("websocket", {})["close_exit"] = elapsed
    # CLOSE_TIMEOUT (2 s), not aiohttp's 10 s close wait restarted by each frame.
    assert CLOSE_TIMEOUT - 0.1 <= elapsed < CLOSE_TIMEOUT + 4


async def test_a_polite_close_is_quick(printer: PrinterConnection) -> None:
    async with printer.websocket.connect("/websocket") as ws:
        started = time.monotonic()
    assert time.monotonic() - started < CLOSE_TIMEOUT  # the answer, not the wait for one
    assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("this is not JSON", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["not-json", "deeply-nested"],
)
@pytest.mark.parametrize("how", ["receive_json", "iter_json"])
async def test_hostile_json_raises_the_documented_error(
    sim: Simulator, oe_once: OctoEverywhere, payload: str, match: str, how: str
) -> None:
    """Finding 15.5 (WebSocket part): never a bare JSONDecodeError or RecursionError."""
    async with HostileWebSocket(on_open=text(payload)) as server:
        printer = oe_once.printer(sim.app_connection(url=server.url))
        async with printer.websocket.connect("/websocket") as ws:
            with pytest.raises(oe_async.UnexpectedResponseError, match=match) as excinfo:
                if how == "receive_json":
                    await ws.receive_json(timeout=5)
                else:
                    async for _ in ws.iter_json(timeout=5):
                        pass
    assert payload[:10] not in str(excinfo.value)


async def test_iter_json_yields_decoded_messages_until_a_normal_close(
    printer: PrinterConnection, sim: Simulator
) -> None:
    """Issue 16.11: a JSON iterator."""
    sim.state.ws_interval = 0.02
    seen: list[Any] = []
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        async for update in ws.iter_json(timeout=5):
            seen.append(update)
            if len(seen) == 3:
                await sim.close_websockets(1000)
    assert "connected" in seen[0]
    assert all("current" in update for update in seen[1:3])
    assert len(seen) >= 3


async def test_iter_json_deadline(sim: Simulator, oe_once: OctoEverywhere) -> None:
    async with HostileWebSocket(on_open=text("[1]"), every=ping(), interval=0.05) as server:
        printer = oe_once.printer(sim.app_connection(url=server.url))
        async with printer.websocket.connect("/websocket") as ws:
            received = []
            with pytest.raises(oe_async.RequestTimeoutError):
                async for update in ws.iter_json(timeout=0.3):
                    received.append(update)  # noqa: PERF401 (kept when the deadline raises)
    assert received == [[1]]


QUICK = RoutingOptions(probe_timeout=1.0, reprobe_interval=0.5)


async def test_a_6xx_close_on_the_lan_is_not_a_relay_error(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    """Finding 19.3 (WebSocket part): only the relay speaks OctoEverywhere's codes."""
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=QUICK)
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        assert not ws.through_relay
        assert "connected" in await ws.receive_json(timeout=5)
        await sim.close_websockets(604)
        with pytest.raises(oe_async.CommunicationError) as excinfo:
            async for _ in ws:
                pass
    assert not isinstance(excinfo.value, oe_async.RelayError)
    assert sim.requests_to("relay", "/sockjs/websocket") == []


async def test_a_6xx_close_through_the_relay_still_maps(
    printer: PrinterConnection, sim: Simulator
) -> None:
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        assert ws.through_relay
        await ws.receive_json(timeout=5)
        await sim.close_websockets(604)
        with pytest.raises(oe_async.AppConnectionRevokedError):
            async for _ in ws.iter_json():
                pass


async def test_a_lan_subscription_survives_a_604_close(oe: OctoEverywhere, sim: Simulator) -> None:
    """On the LAN a 604 close is a disconnect (reconnect), not a revoked App Connection."""
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, routing=QUICK)
    sub = printer.websocket.subscribe(
        "/sockjs/websocket",
        lambda m: None,
        reconnect=oe_async.ReconnectPolicy(max_failures=None, base_delay=0.01, max_delay=0.02),
    )
    await sub.wait_connected(5)
    await sim.close_websockets(604)
    while sub.connects < 2:
        await asyncio.sleep(0.01)
    assert sub.state is oe_async.SubscriptionState.CONNECTED
    await sub.close()
