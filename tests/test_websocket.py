"""WebSockets through the relay and reconnecting subscriptions."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

import oe_async
from oe_async import (
    OctoEverywhere,
    PrinterConnection,
    ReconnectPolicy,
    SubscriptionEvent,
    SubscriptionState,
    WebSockets,
)
from oe_async.testing import Simulator
from oe_async.websocket import relay_close_code

from .helpers import EVENTUALLY, RecordingServer, acquired_connections, eventually, open_fds

PRINTER_KEY = "ws-printer-key"
SUBSCRIBE = {"jsonrpc": "2.0", "method": "printer.objects.subscribe", "id": 1, "params": {}}


@pytest_asyncio.fixture(params=["owned", "borrowed"])
async def any_session_printer(
    request: pytest.FixtureRequest, sim: Simulator
) -> AsyncIterator[PrinterConnection]:
    if request.param == "owned":
        async with sim.client() as oe:
            yield oe.printer(sim.app_connection(), headers={"X-Api-Key": PRINTER_KEY})
    else:
        async with (
            aiohttp.ClientSession(headers={"X-App": "ha"}) as session,
            sim.client(session=session) as oe,
        ):
            yield oe.printer(sim.app_connection(), headers={"X-Api-Key": PRINTER_KEY})
            assert not session.closed
            assert dict(session.headers) == {"X-App": "ha"}


async def test_handshake_carries_the_relay_auth(
    any_session_printer: PrinterConnection, sim: Simulator
) -> None:
    async with any_session_printer.websocket.connect("/websocket") as ws:
        await ws.send_json({"jsonrpc": "2.0", "method": "server.info", "id": 1})
        answer = await ws.receive_json()
        assert answer["result"]["klippy_state"] == "ready"
    handshake = sim.requests_to("relay", "/websocket")[0]
    assert handshake.authorization == sim.auth.header_value
    assert handshake.headers["X-Api-Key"] == PRINTER_KEY
    assert handshake.headers["Upgrade"].lower() == "websocket"


async def test_a_redirected_handshake_carries_no_secret_elsewhere(
    any_session_printer: PrinterConnection, sim: Simulator, foreign: RecordingServer
) -> None:
    sim.redirect("/websocket", foreign.url / "websocket", status=307)
    with pytest.raises(oe_async.CommunicationError, match="did not accept the upgrade"):
        async with any_session_printer.websocket.connect("/websocket"):
            pass
    assert len(foreign.seen) == 1
    assert foreign.secret_headers_seen() == []
    assert sim.requests_to("relay", "/websocket")[0].authorization == sim.auth.header_value


async def test_same_origin_redirects_keep_the_auth(
    any_session_printer: PrinterConnection, sim: Simulator
) -> None:
    sim.redirect("/old-socket", "/websocket", status=307)
    async with any_session_printer.websocket.connect("/old-socket") as ws:
        await ws.send_json({"jsonrpc": "2.0", "method": "server.info", "id": 1})
        assert (await ws.receive_json())["id"] == 1
    hops = [r for r in sim.requests if r.origin == "relay"]
    assert [r.path for r in hops] == ["/old-socket", "/websocket"]
    assert all(r.authorization == sim.auth.header_value for r in hops)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (601, oe_async.PrinterOfflineError),
        (604, oe_async.AppConnectionRevokedError),
        (606, oe_async.InvalidCredentialsError),
    ],
)
async def test_6xx_handshake_maps(
    printer: PrinterConnection, sim: Simulator, status: int, error: type
) -> None:
    sim.fail(status, path="/websocket")
    with pytest.raises(error):
        async with printer.websocket.connect("/websocket"):
            pass


async def test_printer_refusing_the_upgrade(printer: PrinterConnection) -> None:
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        async with printer.websocket.connect("/no-such-socket"):
            pass
    assert excinfo.value.status == 404


async def test_6xx_close_code_maps(printer: PrinterConnection, sim: Simulator) -> None:
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        assert "connected" in await ws.receive_json()
        await sim.close_websockets(604)
        with pytest.raises(oe_async.AppConnectionRevokedError):
            async for _ in ws:
                pass


async def test_a_normal_close_ends_iteration(printer: PrinterConnection, sim: Simulator) -> None:
    async with printer.websocket.connect("/sockjs/websocket") as ws:
        await ws.receive_json()
        await sim.close_websockets(1000)
        assert [m async for m in ws] == []


def test_relay_close_code_recognises_aiohttps_protocol_error() -> None:
    """aiohttp reports close code 604 as a protocol error naming the code: keep parsing it."""
    error = aiohttp.WSMessage(
        aiohttp.WSMsgType.ERROR, aiohttp.WebSocketError(1002, "Invalid close code: 604"), None
    )
    assert relay_close_code(error) == 604
    close = aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, 612, "")
    assert relay_close_code(close) == 612
    normal = aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, 1000, "")
    assert relay_close_code(normal) is None


def test_heartbeat_is_on_by_default() -> None:
    for method in (WebSockets.connect, WebSockets.subscribe):
        assert inspect.signature(method).parameters["heartbeat"].default == 30.0


async def test_1000_open_cancel_cycles_leave_nothing_behind(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    async def hold() -> None:
        async with printer.websocket.connect("/sockjs/websocket") as ws:
            async for _ in ws:
                await asyncio.sleep(3600)

    async def cycle() -> None:
        opened = len(sim.requests_to("relay", "/sockjs/websocket"))
        task = asyncio.create_task(hold())
        while len(sim.requests_to("relay", "/sockjs/websocket")) == opened or not sim.websockets:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for _ in range(20):  # warm up pools, caches and lazily created sessions
        await cycle()
    fds = await open_fds()
    for _ in range(1000):
        await cycle()
    await eventually(lambda: acquired_connections(oe) == 0, "connections released")
    give_up = asyncio.get_running_loop().time() + EVENTUALLY
    while await open_fds() - fds > 4 and asyncio.get_running_loop().time() < give_up:
        await asyncio.sleep(0.05)  # closes still in flight
    assert await open_fds() - fds <= 4


class TestSubscription:
    async def test_reconnects_and_resubscribes_after_a_kill(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.ws_interval = 0.02
        events: list[SubscriptionEvent] = []
        updates: list[dict[str, object]] = []
        sub = printer.websocket.subscribe(
            "/websocket",
            lambda m: updates.append(json.loads(m.data)),
            hello=SUBSCRIBE,
            on_state=events.append,
            reconnect=ReconnectPolicy(max_failures=None, base_delay=0.05, max_delay=0.2),
        )
        await sub.wait_connected(5)
        await eventually(
            lambda: any(u.get("method") == "notify_status_update" for u in updates),
            "a status update arrives",
        )
        killed_at = asyncio.get_running_loop().time()
        assert await sim.kill_websockets() == 1
        while sub.connects < 2:
            await asyncio.sleep(0.005)
        # Within the back-off cap (0.2 s), plus slack for a busy machine: not a wait for the
        # 30 s heartbeat to notice, nor the default policy's back-off.
        assert asyncio.get_running_loop().time() - killed_at < 0.2 + 2
        await sub.wait_connected(5)
        subscribes = [
            d
            for p, d in sim.ws_received
            if p == "/websocket"
            and isinstance(d, dict)
            and d.get("method") == "printer.objects.subscribe"
        ]
        assert len(subscribes) == 2  # the hello was re-sent
        assert [(e.state, e.reconnected) for e in events] == [
            (SubscriptionState.CONNECTED, False),
            (SubscriptionState.DISCONNECTED, False),
            (SubscriptionState.CONNECTED, True),
        ]
        assert isinstance(events[1].error, oe_async.CommunicationError)
        await sub.close()
        assert sub.state is SubscriptionState.STOPPED

    async def test_604_ends_it(self, printer: PrinterConnection, sim: Simulator) -> None:
        events: list[SubscriptionEvent] = []
        sub = printer.websocket.subscribe(
            "/websocket",
            lambda m: None,
            on_state=events.append,
            reconnect=ReconnectPolicy(max_failures=None, base_delay=0.01, max_delay=0.02),
        )
        await sub.wait_connected(5)
        sim.revoke()
        await sim.kill_websockets()
        with pytest.raises(oe_async.AppConnectionRevokedError):
            await asyncio.wait_for(sub.wait(), 5)
        assert events[-1].state is SubscriptionState.STOPPED
        assert isinstance(events[-1].error, oe_async.AppConnectionRevokedError)

    async def test_a_604_close_code_ends_it(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sub = printer.websocket.subscribe("/sockjs/websocket", lambda m: None)
        await sub.wait_connected(5)
        await sim.close_websockets(604)
        with pytest.raises(oe_async.AppConnectionRevokedError):
            await asyncio.wait_for(sub.wait(), 5)
        assert len(sim.requests_to("relay", "/sockjs/websocket")) == 1

    async def test_async_callbacks_and_callable_hello(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.ws_interval = 0.02
        received = asyncio.Queue[dict[str, object]]()

        async def on_message(message: aiohttp.WSMessage) -> None:
            await received.put(json.loads(message.data))

        async def hello(ws: oe_async.PrinterWebSocket) -> None:
            await ws.send_json({"auth": "user:session"})
            await ws.send_json({"subscribe": {"state": True}})

        sub = printer.websocket.subscribe("/sockjs/websocket", on_message, hello=hello)
        first = await asyncio.wait_for(received.get(), 5)
        assert "connected" in first
        kinds = set()
        while not {"event", "current"} <= kinds:
            kinds |= set(await asyncio.wait_for(received.get(), 5))
        assert [d for _, d in sim.ws_received] == [
            {"auth": "user:session"},
            {"subscribe": {"state": True}},
        ]
        await sub.close()

    async def test_a_failing_callback_stops_it_and_is_raised(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        def on_message(message: aiohttp.WSMessage) -> None:
            raise ValueError("app bug")

        sub = printer.websocket.subscribe("/sockjs/websocket", on_message)
        with pytest.raises(ValueError, match="app bug"):
            await asyncio.wait_for(sub.wait(), 5)
        assert sub.state is SubscriptionState.STOPPED

    async def test_temporary_failures_give_up_when_told(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.printer_online = False
        sub = printer.websocket.subscribe(
            "/websocket", lambda m: None, reconnect=ReconnectPolicy(max_failures=3, base_delay=0)
        )
        with pytest.raises(oe_async.PrinterOfflineError):
            await asyncio.wait_for(sub.wait(), 5)
        assert len(sim.requests_to("relay", "/websocket")) == 3

    async def test_closing_the_client_stops_every_subscription(self, sim: Simulator) -> None:
        oe = sim.client()
        printer = oe.printer(sim.app_connection())
        subs = [printer.websocket.subscribe("/websocket", lambda m: None) for _ in range(5)]
        for sub in subs:
            await sub.wait_connected(5)
        await oe.close()
        assert all(sub.state is SubscriptionState.STOPPED for sub in subs)
        await eventually(lambda: sim.websockets == [], "the simulator sees every socket closed")

    async def test_bad_callbacks_are_refused(self, oe: OctoEverywhere, sim: Simulator) -> None:
        printer = oe.printer(sim.app_connection())
        with pytest.raises(oe_async.InvalidArgumentError):
            printer.websocket.subscribe("/websocket", "not callable")  # type: ignore[arg-type]
