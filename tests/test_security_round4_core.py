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
import hashlib
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import aiohttp
import psutil
import pytest
from aiohttp import web
from yarl import URL

from oe_async import (
    AppConnection,
    ClientClosedError,
    ConnectionBudget,
    ConnectionPoolExhaustedError,
    InvalidArgumentError,
    OctoEverywhere,
    OctoEverywhereError,
    PortalError,
    PrinterConnection,
    RequestTimeoutError,
    RetryPolicy,
    SubscriptionState,
)
from oe_async.testing import Simulator
from oe_async.testing.hostile import Behaviour, HostileServer
from oe_async.testing.resolver import LoopbackResolver

from .helpers import RecordingServer, acquired_connections, listdir, read_bytes, write_bytes

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


async def syn_sent(port: int, count: int) -> None:
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
        port = server.url.port
        assert port is not None
        # The server's own fillers of its accept queue wait on their SYN too.
        before = await asyncio.to_thread(connecting_to, port)
        tasks = {name: asyncio.create_task(call(printer)) for name, call in CALLS.items()}
        if behaviour == "silent":
            await until(lambda: server.connections >= len(CALLS), "every call connected")
        else:
            await syn_sent(port, before + len(CALLS))
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


# ------------------------------------------------------------ item 7: loopback means an address


LOOPBACK_NAMES = ["attacker.localhost", "localhost.", "localhost"]


async def test_a_loopback_name_never_gets_the_credentials(sim: Simulator) -> None:
    """``http://attacker.localhost/`` resolved elsewhere received the relay credentials.

    The resolver below plays a DNS that points every name at a server that is not the
    relay (on 127.0.0.1, standing in for another machine): no name may be trusted as
    loopback, with or without the opt-in, from any entry point.
    """
    async with (
        RecordingServer() as attacker,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=LoopbackResolver())) as s,
        sim.client(session=s, retry=RetryPolicy.never()) as oe,
    ):
        port = attacker.url.port
        refused: list[str] = []
        for name in LOOPBACK_NAMES:
            url = f"http://{name}:{port}/"
            try:
                conn = sim.app_connection(url=url, allow_insecure_loopback=True)
            except InvalidArgumentError as err:
                message = str(err)
                refused.append(name)
            else:
                with contextlib.suppress(OctoEverywhereError):
                    await oe.printer(conn).get_json("/api/version")
                message = ""
            if name in refused:
                assert "by its address" in message
                assert name not in message
            with pytest.raises(PortalError, match="by its address"):
                AppConnection.from_completion_url(
                    sim.completion_url(url=url.rstrip("/")), allow_insecure_loopback=True
                )
            stored = {**sim.app_connection().to_dict(), "url": url}
            with pytest.raises(InvalidArgumentError, match="by its address"):
                AppConnection.from_dict(stored)
            with pytest.raises(InvalidArgumentError, match="by its address"):
                OctoEverywhere("app", app_api_url=url, allow_insecure_loopback=True)
        assert attacker.secret_headers_seen() == []
        assert attacker.seen == []
        assert refused == LOOPBACK_NAMES


def test_loopback_addresses_still_work_with_the_opt_in(sim: Simulator) -> None:
    for url in ("http://127.0.0.1:1/", "http://127.0.0.2:1/", "http://[::1]:1/"):
        assert sim.app_connection(url=url, allow_insecure_loopback=True).url.port == 1


# ------------------------------------------------------------ item 5: download_to's whole deadline

MiB = 1024 * 1024


async def test_download_to_timeout_is_the_whole_calls_deadline(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    """Each resume got a fresh timeout: ``timeout=5`` on a slow link ran for 20 s and more."""
    sim.files.add_synthetic("slow.bin", 4 * MiB)
    sim.state.transfer.trickle = (64 * 1024, 0.05)  # ~1.3 MB/s: about 3.2 s in all
    dest = tmp_path / "slow.bin"
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(RequestTimeoutError, match="deadline"):
        await printer.files.download_to("/downloads/files/local/slow.bin", dest, timeout=1.0)
    took = loop.time() - began
    assert 0.95 <= took < 1.0 + 0.5, took
    assert await listdir(tmp_path) == []


async def test_download_to_deadline_spans_resumes(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    sim.files.add_synthetic("cut.bin", 4 * MiB)
    sim.state.transfer.trickle = (64 * 1024, 0.05)
    sim.state.transfer.drop_after = MiB // 2  # every attempt is cut after 512 KiB
    dest = tmp_path / "cut.bin"
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(RequestTimeoutError, match="deadline"):
        await printer.files.download_to("/downloads/files/local/cut.bin", dest, timeout=1.0)
    assert loop.time() - began < 1.0 + 0.5
    assert len(sim.requests_to("relay", "/downloads/*")) >= 2  # it did resume meanwhile
    assert await listdir(tmp_path) == []


# ------------------------------------------------------------ item 8: never stitch two versions


class VersionedFile:
    """A plain-http "printer" whose file changes after the first answer, which it cuts.

    Args:
        versions: the file's content for the first answer and for every later request.
        etags: the ``ETag`` sent with each version (None: no validator at all).
        honour_if_range: whether a stale ``If-Range`` gets the whole new file (RFC 9110)
            or, like a careless server, a 206 of the new version anyway.

    """

    def __init__(
        self,
        versions: tuple[bytes, bytes],
        *,
        etags: tuple[str | None, str | None] = (None, None),
        honour_if_range: bool = False,
    ) -> None:
        self.versions = versions
        self.etags = etags
        self.honour_if_range = honour_if_range
        self.requests: list[dict[str, str]] = []
        self.url = URL()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        first = len(self.requests) == 1
        data = self.versions[0 if first else 1]
        etag = self.etags[0 if first else 1]
        start = 0
        wanted = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        stale = if_range is not None and if_range != etag
        if wanted and not (stale and self.honour_if_range):
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_type = "application/octet-stream"
        resp.content_length = len(data) - start
        resp.headers["Accept-Ranges"] = "bytes"
        if etag is not None:
            resp.headers["ETag"] = etag
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        if first:  # cut the first answer half-way
            await resp.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(data[start:])
        await resp.write_eof()
        return resp

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = URL(f"http://127.0.0.1:{self._runner.addresses[0][1]}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


OLD = bytes(range(256)) * 4096  # 1 MiB
NEW = bytes(reversed(range(256))) * 6144  # 1.5 MiB


@pytest.mark.parametrize(
    ("etags", "honour"),
    [
        ((None, None), False),  # no validator: only the total length can tell
        (('"v1"', '"v2"'), False),  # a server that ignores If-Range: the ETag tells
        (('W/"v1"', 'W/"v2"'), False),  # weak ETags: never in If-Range; the length tells
    ],
    ids=["no-validator", "if-range-ignored", "weak-etag"],
)
async def test_a_resume_never_stitches_two_versions(
    sim: Simulator, tmp_path: Path, etags: tuple[str | None, str | None], honour: bool
) -> None:
    """A 206 of the new version was appended to the old one's first half."""
    new = NEW if etags[0] != '"v1"' else bytes(reversed(OLD))  # same length: only the ETag
    async with (
        VersionedFile((OLD, new), etags=etags, honour_if_range=honour) as server,
        sim.client(retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(sim.app_connection(), lan_url=server.url, route="local")
        dest = tmp_path / "f.bin"
        await printer.files.download_to("/f.bin", dest)
        assert await read_bytes(dest) == new
        assert len(server.requests) == 3  # cut, the refused 206, the whole new file
        assert "Range" not in server.requests[2]
        assert await listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize(
    ("etag", "if_range"),
    [('W/"v1"', None), ('"v1"', '"v1"')],
    ids=["weak", "strong"],
)
async def test_only_a_strong_etag_goes_in_if_range(
    sim: Simulator, tmp_path: Path, etag: str, if_range: str | None
) -> None:
    """A weak ETag went in If-Range (RFC 9110 13.1.5 forbids it; no date either then)."""
    async with (
        VersionedFile((OLD, OLD), etags=(etag, etag)) as server,
        sim.client(retry=RetryPolicy.never()) as oe,
    ):
        printer = oe.printer(sim.app_connection(), lan_url=server.url, route="local")
        dest = tmp_path / "f.bin"
        await printer.files.download_to("/f.bin", dest)
        assert await read_bytes(dest) == OLD
        assert len(server.requests) == 2  # the same file resumes either way
        resumed = server.requests[1]
        assert resumed.get("Range") == f"bytes={len(OLD) // 2}-"
        assert resumed.get("If-Range") == if_range


# ------------------------------------------------------------ item 9: cancelled twice


class WatchedExecutor(ThreadPoolExecutor):
    """A one-thread executor that notes what is submitted (file writes by name)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(getattr(fn, "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


async def test_cancelling_download_to_twice_leaves_nothing(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    """A second cancel during the first's clean-up left the .part file and its open handle."""
    sim.files.add_synthetic("twice.bin", 64 * MiB)
    loop = asyncio.get_running_loop()
    executor = WatchedExecutor()
    loop.set_default_executor(executor)
    gate = threading.Event()
    blocked = asyncio.Event()
    mark: list[int] = []

    async def progress(done: int, total: int | None) -> None:
        if not blocked.is_set():
            blocked.set()
            # Every executor job from now on waits behind this one.
            loop.run_in_executor(None, gate.wait)
            mark.append(len(executor.submitted))

    task = asyncio.create_task(
        printer.files.download_to(
            "/downloads/files/local/twice.bin", tmp_path / "twice.bin", progress=progress
        )
    )
    try:
        await asyncio.wait_for(blocked.wait(), EVENTUALLY)
        # A batch write queued behind the blocked thread: the download waits on it (or will).
        await until(lambda: "write" in executor.submitted[mark[0] :], "a write queued")
        task.cancel()
        for _ in range(5):  # let the clean-up reach its wait for that write
            await asyncio.sleep(0)
        task.cancel()  # the second cancel, during the first one's clean-up
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, EVENTUALLY)
    assert await listdir(tmp_path) == []
    files = await asyncio.to_thread(lambda: [f.path for f in psutil.Process().open_files()])
    assert not [f for f in files if f.startswith(str(tmp_path))]


# ------------------------------------------------------------ item 13: the umask


@pytest.mark.parametrize("umask", [0o022, 0o027])
async def test_downloaded_files_follow_the_umask(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, umask: int
) -> None:
    """Every download was 0600, whatever the umask (an existing 0644 file became 0600)."""
    sim.files.add_synthetic("m.bin", 1000)
    fresh, existing = tmp_path / "fresh.bin", tmp_path / "existing.bin"
    await write_bytes(existing, b"old")
    await asyncio.to_thread(existing.chmod, 0o644)
    previous = os.umask(umask)
    try:
        for dest in (fresh, existing):
            await printer.files.download_to("/downloads/files/local/m.bin", dest)
    finally:
        os.umask(previous)
    for dest in (fresh, existing):
        mode = (await asyncio.to_thread(dest.stat)).st_mode & 0o777
        assert mode == 0o666 & ~umask, (dest.name, oct(mode))


# ------------------------------------------------------------ item 14: a folder named like the backup


async def test_a_folder_in_the_backups_way_does_not_fail_the_download(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    """A folder named like the temporary file + ``.old`` made the rename raise IsADirectoryError."""
    simfile = sim.files.add_synthetic("o.bin", 3 * MiB, seed=3)
    dest = tmp_path / "o.bin"
    await write_bytes(dest, b"previous")
    planted: list[str] = []

    async def progress(done: int, total: int | None) -> None:
        if planted:
            return
        # Another user of a shared folder sees the temporary file and takes the names the
        # old dest could be kept under: the old fixed name, and a few more for good measure.
        for name in await listdir(tmp_path):
            if name.endswith(".part"):
                planted.append(name + ".old")
                await asyncio.to_thread((tmp_path / (name + ".old")).mkdir)

    await printer.files.download_to("/downloads/files/local/o.bin", dest, progress=progress)
    assert planted
    assert hashlib.sha256(await read_bytes(dest)).hexdigest() == simfile.digest()
    assert await listdir(tmp_path) == sorted(["o.bin", *planted])


async def test_closing_a_subscription_or_poller_from_its_own_callback(
    printer: PrinterConnection,
) -> None:
    """``await sub.close()`` in ``on_message`` (or ``poller.close()`` in ``on_status``) returns."""
    outcome: list[str] = []

    async def on_message(_: aiohttp.WSMessage) -> None:
        await sub.close()
        outcome.append("sub.close() returned")

    sub = printer.websocket.subscribe("/sockjs/websocket", on_message)
    await asyncio.wait_for(sub.wait(), EVENTUALLY)  # ends, without an error
    assert sub.state is SubscriptionState.STOPPED

    async def on_status(_: object) -> None:
        await poller.close()
        outcome.append("poller.close() returned")

    poller = printer.gadget.poller(on_status)
    await asyncio.wait_for(poller.wait(), EVENTUALLY)
    assert outcome == ["sub.close() returned", "poller.close() returned"]
