"""Test-only helpers: a recording server that plays an unrelated (foreign) origin, and more."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import os
import random
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Self

import aiohttp
import attrs
import psutil
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from oe_async import OctoEverywhere


@attrs.define
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]


class RecordingServer:
    """Answers 200 JSON on every path and records each request's headers."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.seen: list[Seen] = []
        self.url = URL()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path, CIMultiDict(request.headers)))
        return web.json_response({"foreign": True, "path": request.path})

    async def __aenter__(self) -> Self:
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()  # a taken address: no socket left for the collector to warn about
            raise
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=self.ssl_context).start()
        scheme = "https" if self.ssl_context else "http"
        self.url = URL(f"{scheme}://{self.host}:{sock.getsockname()[1]}/")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def secret_headers_seen(self) -> list[tuple[str, str]]:
        """Every (path, header) pair where a secret header reached this origin."""
        return [
            (s.path, name)
            for s in self.seen
            for name in ("Authorization", "AppToken", "X-Api-Key")
            if name in s.headers
        ]


#: The bound on a wait for something that takes milliseconds on an idle machine: generous,
#: because the suite runs on a loaded 2-core machine (seven other suites, stress-ng in
#: `make flake-hunt`). Reaching it is a failure, never a way to wait.
EVENTUALLY = 30.0


async def eventually(
    condition: Callable[[], object], what: str, within: float = EVENTUALLY
) -> None:
    """Poll ``condition`` every 10 ms until it is true; fail naming ``what`` after ``within`` s.

    For states no event announces (a request reaching a server, a connection opening):
    the test then runs the moment the state holds, however slow the machine is.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"not true after {within:g} s: {what}")
        await asyncio.sleep(0.01)


class polls:  # noqa: N801 (used as a loop: `async for _ in polls()`)
    """The turns of a polling loop bounded in time: at once, then every ``every`` s.

    ``async for _ in polls(): if done(): break`` with an ``else:`` that fails: unlike
    ``for _ in range(200)``, the bound is ``within`` seconds however slow the machine.
    """

    def __init__(self, within: float = EVENTUALLY, every: float = 0.02) -> None:
        self.within = within
        self.every = every
        self._give_up: float | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> None:
        loop = asyncio.get_running_loop()
        if self._give_up is None:
            self._give_up = loop.time() + self.within
            return
        if loop.time() > self._give_up:
            raise StopAsyncIteration
        await asyncio.sleep(self.every)


async def recording_on_port_80(stack: contextlib.AsyncExitStack) -> RecordingServer:
    """A :class:`RecordingServer` on port 80 (what a LAN address learned from an IP implies).

    Each gets a loopback address of its own, 127.x.y.z drawn at random, and another is
    drawn when one is taken: other suites on the machine (other worktrees, parallel runs)
    bind port 80 too. Raises the ``OSError`` when port 80 cannot be bound at all (not
    root, no 127/8 beyond 127.0.0.1): the caller skips with its message.
    """
    draw = random.Random()
    for _ in range(49):
        host = f"127.{draw.randrange(1, 255)}.{draw.randrange(256)}.{draw.randrange(1, 255)}"
        try:
            return await stack.enter_async_context(RecordingServer(host=host, port=80))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
    return await stack.enter_async_context(RecordingServer(host="127.254.254.254", port=80))


def acquired_connections(holder: OctoEverywhere | aiohttp.ClientSession) -> int:
    """Connections handed out and not yet given back, over every pool ``holder`` sends on.

    Pass the client: an owned one keeps streams (frames, downloads, WebSockets) in a second
    session of its own, which ``oe.session`` alone would not count (``oe.sessions`` lists
    both). A bare ``ClientSession`` is for a borrowed session (streams and handshakes share
    its connector) or one a test made. Sessions sharing a connector count once.
    aiohttp has no public counter; ``_acquired`` is read (never modified) for assertions.
    """
    sessions = holder.sessions if isinstance(holder, OctoEverywhere) else (holder,)
    connectors = {id(c): c for s in sessions if (c := s.connector) is not None}
    return sum(len(getattr(c, "_acquired", ())) for c in connectors.values())


class Blackhole:
    """A TCP listener on loopback that accepts connections and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = URL()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = URL(f"http://127.0.0.1:{port}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class Dropper:
    """A TCP listener that accepts and immediately closes every connection (counts them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = URL()
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read(1)  # the request has started to arrive
        writer.close()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = URL(f"http://127.0.0.1:{port}/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class RawResponder:
    """A loopback server thread that sends one prebuilt HTTP response to every connection.

    For measuring the client alone: the server's work runs in its own thread (a test reads
    ``time.thread_time()`` on the event loop's thread), and its bytes are exactly ``head``
    and ``body`` (e.g. a body in one-byte HTTP chunks), written with blocking ``sendall``.
    """

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body
        self.connections = 0
        self.url = URL()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-responder", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(4096)
                    if not data:
                        break
                    request += data
                conn.sendall(self.head + self.body)

    async def __aenter__(self) -> Self:
        self.url = URL(f"http://127.0.0.1:{self._server.getsockname()[1]}/")
        await asyncio.to_thread(self._thread.start)  # start() waits on a lock
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self._server.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def listdir(path: Path) -> list[str]:
    """Sorted names in a folder, read off the event loop."""
    return sorted(await asyncio.to_thread(os.listdir, path))


async def read_bytes(path: Path) -> bytes:
    """A file's content, read off the event loop."""
    return await asyncio.to_thread(path.read_bytes)


async def write_bytes(path: Path, data: bytes) -> None:
    """Write a file off the event loop."""
    await asyncio.to_thread(path.write_bytes, data)


async def open_fds() -> int:
    """This process's open file descriptors (psutil reads /proc: off the loop)."""
    return await asyncio.to_thread(lambda: psutil.Process().num_fds())


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (not a package) as the module ``example_<name>``, once."""
    loaded = sys.modules.get(f"example_{name}")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
