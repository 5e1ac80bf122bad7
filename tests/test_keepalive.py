"""Kept-alive connections at scale (issue 31): the keep-alive, stale connections, the idle cap.

An app polls each printer every 5 to 60 s, and every printer has its own relay host: with
aiohttp's 15 s keep-alive, a poll every 20 s or more paid a new TCP and TLS handshake each
time. The owned session keeps idle connections ``ConnectionBudget.keepalive`` (70 s). A
connection the server has closed while it sat in the pool is never sent on (any method); a
close that crosses a request on the wire re-sends only an idempotent request. ``max_idle``
bounds the idle connections an app keeps (each TLS one costs ~300 KiB), least recently used
closed first.

Handshakes are counted with ``SSLContext.session_stats()["connect"]`` (OpenSSL's count of
client handshakes on that context): no clock, no aiohttp internals.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from oe_async import (
    CommunicationError,
    ConnectionBudget,
    InvalidArgumentError,
    OctoEverywhere,
    RetryPolicy,
    Route,
    RoutingOptions,
)
from oe_async.testing import Simulator, SimulatorCA

STATUS = "/api/printer"


def handshakes(context: ssl.SSLContext) -> int:
    return int(context.session_stats()["connect"])


@pytest.fixture(scope="module")
def test_ca() -> SimulatorCA:
    return SimulatorCA()


@pytest_asyncio.fixture
async def tls_sim() -> AsyncIterator[Simulator]:
    async with Simulator(tls=True) as sim:
        yield sim


def test_keepalive_and_max_idle_are_validated() -> None:
    assert ConnectionBudget().keepalive == 70
    assert ConnectionBudget().max_idle is None
    for bad in ({"keepalive": 0}, {"keepalive": "70"}, {"max_idle": -1}, {"max_idle": 1.5}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            ConnectionBudget(**bad)  # type: ignore[arg-type]
    assert ConnectionBudget(max_idle=0).max_idle == 0


async def test_each_printer_keeps_one_connection_between_polls(tls_sim: Simulator) -> None:
    printers = [await tls_sim.add_printer() for _ in range(3)]
    context = tls_sim.ca.client_context() if tls_sim.ca else None
    async with tls_sim.client(ssl_context=context) as oe:
        polled = [oe.printer(p.app_connection()) for p in printers]
        for _ in range(3):
            for printer in polled:
                await printer.get_json(STATUS)
    assert context is not None
    assert handshakes(context) == 3  # one per printer, not one per poll


@pytest.mark.parametrize(("keepalive", "expected"), [(0.05, 2), (60.0, 1)])
async def test_the_keepalive_decides_when_an_idle_connection_is_given_up(
    tls_sim: Simulator, keepalive: float, expected: int
) -> None:
    """The budget's keepalive reaches the owned connector (aiohttp's default is 15 s).

    The sleep is the mechanism under test, not a synchronisation: 0.1 s idle is always past
    0.05 s and never past 60 s, however loaded the machine.
    """
    assert tls_sim.ca is not None
    context = tls_sim.ca.client_context()
    budget = ConnectionBudget(keepalive=keepalive)
    async with tls_sim.client(ssl_context=context, connections=budget) as oe:
        printer = oe.printer(tls_sim.app_connection())
        await printer.get_json(STATUS)
        await asyncio.sleep(0.1)
        await printer.get_json(STATUS)
    assert handshakes(context) == expected


async def test_max_idle_closes_the_least_recently_used_idle_connection(
    tls_sim: Simulator,
) -> None:
    printers = [await tls_sim.add_printer() for _ in range(5)]
    assert tls_sim.ca is not None
    context = tls_sim.ca.client_context()
    async with tls_sim.client(ssl_context=context, connections=ConnectionBudget(max_idle=2)) as oe:
        polled = [oe.printer(p.app_connection()) for p in printers]
        for printer in polled:
            await printer.get_json(STATUS)
        assert handshakes(context) == 5
        # The two most recently used are still open ...
        await polled[4].get_json(STATUS)
        await polled[3].get_json(STATUS)
        assert handshakes(context) == 5
        # ... the others were closed as they went past the cap.
        await polled[0].get_json(STATUS)
        assert handshakes(context) == 6
        # The cap counts both pools: a stream read to its end leaves an idle connection too.
        async with polled[1].request("GET", STATUS, stream=True) as resp:
            await resp.read()
        assert handshakes(context) == 7
        await polled[0].get_json(STATUS)  # the two most recent: printer 0 and the stream
        await polled[3].get_json(STATUS)  # printer 3 was pushed out
        assert handshakes(context) == 8


async def test_max_idle_zero_keeps_no_idle_connection(tls_sim: Simulator) -> None:
    assert tls_sim.ca is not None
    context = tls_sim.ca.client_context()
    async with tls_sim.client(ssl_context=context, connections=ConnectionBudget(max_idle=0)) as oe:
        printer = oe.printer(tls_sim.app_connection())
        for _ in range(3):
            assert await printer.get_json(STATUS)
    assert handshakes(context) == 3


async def test_max_idle_needs_the_owned_session() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidArgumentError, match="max_idle applies to the session"):
            OctoEverywhere("app", session=session, connections=ConnectionBudget(max_idle=10))
        # The keep-alive has no such promise to break: a borrowed session keeps its own.
        await OctoEverywhere("app", session=session, connections=ConnectionBudget()).close()


# ------------------------------------------------------------------ stale connections


class KeptAliveServer:
    """An HTTP/1.1 keep-alive server (plain or TLS) that records what reached it.

    ``seen`` lists ``(connection number, method)`` for every request that arrived.
    ``hold``: send all of the next answer but its last byte, then wait for the event (so
    the client holds the connection meanwhile). ``cross_next``: close a kept-alive
    connection when its next request arrives, unanswered, as a server timing it out does
    when its close crosses the request on the wire.
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.url = URL()
        self.seen: list[tuple[int, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.hold: asyncio.Event | None = None
        self.cross_next = False
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(self.writers)
        self.writers.append(writer)
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                method, path = lines[0].split(" ")[:2]
                self.seen.append((number, method))
                if answered and self.cross_next:
                    self.cross_next = False
                    writer.transport.abort()
                    return
                answered += 1
                # "/" answers as the simulator's relay does, so a LAN probe trusts this server.
                status, kind = (
                    (b"404 Not Found", b"text/plain")
                    if path == "/"
                    else (
                        b"200 OK",
                        b"application/json",
                    )
                )
                body = b'{"answer": %d}' % len(self.seen)
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: %s\r\n" % (status, kind)
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body[:-1]
                )
                hold, self.hold = self.hold, None
                if hold is not None:
                    await writer.drain()
                    await hold.wait()
                writer.write(body[-1:])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> KeptAliveServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        scheme = "https" if self.context is not None else "http"
        self.url = URL(f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.transport.abort()


@pytest.fixture(params=["http", "https"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def contexts(scheme: str, test_ca: SimulatorCA) -> Iterator[tuple[ssl.SSLContext | None, ...]]:
    if scheme == "http":
        yield None, None
    else:
        yield test_ca.server_context("127.0.0.1"), test_ca.client_context()


async def _readable(fd: int) -> None:
    """Wait (polling, generously bounded) until ``fd`` has something unread: the close."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    async with asyncio.timeout(10):
        while not poller.poll(0):
            await asyncio.sleep(0.005)


async def test_a_connection_the_server_closed_is_not_sent_on(
    sim: Simulator, contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None]
) -> None:
    """A POST never goes out on a pooled connection whose close the loop has not read yet.

    The client's reading of the idle connection is paused (a busy loop, or a close that
    arrived just now): aiohttp still thinks it open. Before, the POST was written into a
    dead connection and failed (it would have hung here, as the paused client never reads
    the reset); now it goes on a new connection, sent once.
    """
    server_context, client_context = contexts
    async with (
        KeptAliveServer(server_context) as server,
        sim.client(ssl_context=client_context, retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(sim.app_connection(url=server.url))
        server.hold = hold = asyncio.Event()
        async with printer.request("POST", "/api/job", json={"command": "start"}) as resp:
            assert resp.connection is not None
            transport = resp.connection.transport
            assert transport is not None
            hold.set()
            assert await resp.json() == {"answer": 1}
        transport.pause_reading()  # the loop will not read this connection's close
        server.writers[0].transport.abort()  # the server times the idle connection out
        await _readable(transport.get_extra_info("socket").fileno())

        try:
            answer = await printer.post_json("/api/job", {"command": "pause"}, timeout=5)
        finally:
            transport.abort()  # dropped already; paused, a TLS one would wait out its shutdown
    assert answer == {"answer": 2}
    assert server.seen == [(0, "POST"), (1, "POST")]  # each once; the second on a new one


async def test_a_close_crossing_a_request_resends_only_idempotent_ones(sim: Simulator) -> None:
    """The server's close was on the wire when the request left: it cannot be told apart
    from a server that read the request and died, so only an idempotent request goes again
    (aiohttp's one re-send, even with retries off); a POST fails and is not repeated."""
    async with (
        KeptAliveServer() as server,
        sim.client(retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(sim.app_connection(url=server.url))
        assert await printer.get_json(STATUS) == {"answer": 1}
        server.cross_next = True
        assert await printer.get_json(STATUS) == {"answer": 3}
        assert server.seen == [(0, "GET"), (0, "GET"), (1, "GET")]

        assert await printer.post_json("/api/job", {"command": "start"}) == {"answer": 4}
        server.cross_next = True
        with pytest.raises(CommunicationError):
            await printer.post_json("/api/job", {"command": "pause"})
    assert server.seen[3:] == [(1, "POST"), (1, "POST")]  # the second once: not re-sent


async def test_a_post_that_may_have_reached_the_lan_is_not_sent_to_the_relay(
    sim: Simulator,
) -> None:
    """The LAN fallback moves a request to the relay only if it never left (or may be
    repeated): a POST whose LAN connection closed as it arrived may have run there."""
    async with (
        KeptAliveServer() as lan,
        sim.client(retry=RetryPolicy.never()) as oe,
    ):
        routing = RoutingOptions(probe_timeout=1.0, reprobe_interval=0.5)
        sim.state.printer_id = None  # no id to prove (the server here tells none): not OctoPrint
        printer = oe.printer(sim.app_connection(), lan_url=lan.url, routing=routing)
        await printer.get_json("/api/version")
        assert printer.route is Route.LAN
        lan.cross_next = True
        with pytest.raises(CommunicationError):
            await printer.post_json("/echo/once", {"x": 1})
    assert [method for _, method in lan.seen].count("POST") == 1
    assert sim.requests_to("relay", "/echo/once") == []
