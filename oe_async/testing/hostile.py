"""A deliberately hostile HTTP server on loopback, for testing how clients survive it.

``aiohttp.web`` is too well-behaved to send 10,000 headers or stop a body half-way, so this
is a raw asyncio TCP server. It runs its own event loop in a background thread: the server's
work never shows up in the client loop's CPU time or stalls, so a test can measure the
client alone (``time.thread_time()`` on the client's loop thread).

    async with HostileServer("gzip_bomb") as server:
        printer = oe.printer(sim.app_connection(url=server.url))
        await printer.get_json("/api/job")   # UnexpectedResponseError, memory bounded

Each behaviour answers every request the same way:

``many_headers``
    a 200 with ``headers`` (10,000) header fields.
``huge_header_line``
    a 200 whose one header line is ``header_line`` (1 MiB) long.
``gzip_bomb``
    a JSON 200 with ``Content-Encoding: gzip`` that expands to ``bomb_size`` (256 MiB) of
    zeros from a few hundred KiB on the wire.
``one_byte_chunks``
    a chunked 200 made of ``chunks`` (1,000,000) one-byte chunks, as fast as the socket takes
    them, or at ``chunk_rate`` chunks per second (a drip that defeats per-read timeouts).
``stall_body``
    a 200 that announces ``Content-Length: 2 * stall_after`` bytes, sends ``stall_after``
    and then nothing, forever.
``silent``
    accepts the connection, reads the request and never answers.
``no_accept``
    a listener whose backlog is full: connections are never accepted (the SYN is dropped),
    so a client waits in ``connect``.

Only loopback addresses are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import zlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Literal, Self, get_args

from yarl import URL

from oe_async.auth import is_loopback_host
from oe_async.errors import InvalidArgumentError

__all__ = ["BEHAVIOURS", "Behaviour", "HostileServer"]

Behaviour = Literal[
    "many_headers",
    "huge_header_line",
    "gzip_bomb",
    "one_byte_chunks",
    "stall_body",
    "silent",
    "no_accept",
]
BEHAVIOURS: Final[tuple[Behaviour, ...]] = get_args(Behaviour)

_MiB: Final = 1024 * 1024
_BATCH: Final = 1000  # one-byte chunks written per socket write


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes (built once per size, in the server thread)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(_MiB)
    parts = [compressor.compress(block) for _ in range(size // _MiB)]
    parts.append(compressor.compress(bytes(size % _MiB)))
    parts.append(compressor.flush())
    return b"".join(parts)


class HostileServer:
    """A loopback HTTP server that misbehaves in one named way (see the module docstring).

    Args:
        behaviour: one of :data:`BEHAVIOURS`.
        host: a loopback address.
        headers, header_line, bomb_size, chunks, chunk_rate, stall_after: the sizes above.

    """

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        host: str = "127.0.0.1",
        headers: int = 10_000,
        header_line: int = _MiB,
        bomb_size: int = 256 * _MiB,
        chunks: int = 1_000_000,
        chunk_rate: float | None = None,
        stall_after: int = 64 * 1024,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise InvalidArgumentError(f"unknown behaviour {behaviour!r}; use one of {BEHAVIOURS}")
        if not is_loopback_host(host):
            raise InvalidArgumentError("HostileServer listens on loopback addresses only")
        self.behaviour: Final = behaviour
        self.host: Final = host
        self.headers: Final = headers
        self.header_line: Final = header_line
        self.bomb_size: Final = bomb_size
        self.chunks: Final = chunks
        self.chunk_rate: Final = chunk_rate
        self.stall_after: Final = stall_after
        #: Connections accepted so far (always 0 for ``no_accept``).
        self.connections: int = 0
        self.url: URL = URL()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sockets: list[socket.socket] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()  # binds to the server loop on first wait

    def __repr__(self) -> str:
        return f"<HostileServer {self.behaviour} {self.url}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the server thread and wait until it listens."""
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"oe-hostile-{self.behaviour}", daemon=True
        )
        self._thread.start()
        port = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._listen(), loop))
        self.url = URL.build(scheme="http", host=self.host, port=port, path="/")

    async def close(self) -> None:
        """Stop serving, drop every connection and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        with contextlib.suppress(RuntimeError):  # the loop is already stopped
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()

    async def _listen(self) -> int:
        if self.behaviour == "gzip_bomb":
            await asyncio.to_thread(gzip_bomb, self.bomb_size)  # build it before anyone waits
        if self.behaviour == "no_accept":
            return await self._listen_without_accepting()
        self._server = await asyncio.start_server(
            self._serve, self.host, 0, limit=_MiB, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _listen_without_accepting(self) -> int:
        listener = socket.socket()
        listener.bind((self.host, 0))
        listener.listen(0)
        self._sockets.append(listener)
        port = int(listener.getsockname()[1])
        # Fill the accept queue (backlog 0 holds one) so later SYNs are dropped unanswered.
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((self.host, port))
            self._sockets.append(filler)
        await asyncio.sleep(0.05)  # let the handshakes that can complete do so
        return port

    async def _shutdown(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._handlers:
            await asyncio.wait(self._handlers)
        if self._server is not None:
            await self._server.wait_closed()

    async def _forever(self) -> None:
        """Wait until the server closes."""
        await self._stop.wait()

    # ------------------------------------------------------------------ behaviours

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        answer: Callable[[asyncio.StreamWriter], Awaitable[None]] = getattr(
            self, f"_answer_{self.behaviour}"
        )
        try:
            while not self._stop.is_set():
                try:
                    await reader.readuntil(b"\r\n\r\n")  # the request head
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                await answer(writer)
        except (ConnectionError, OSError):
            pass  # the client gave up: that is the point
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.transport.abort()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, *parts: bytes) -> None:
        writer.writelines(parts)
        await writer.drain()

    async def _answer_many_headers(self, writer: asyncio.StreamWriter) -> None:
        fields = b"".join(b"X-Hostile-%d: %d\r\n" % (i, i) for i in range(self.headers))
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
            fields,
            b"\r\n{}",
        )

    async def _answer_huge_header_line(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
            b"X-Hostile: " + b"a" * self.header_line + b"\r\n",
            b"\r\n{}",
        )

    async def _answer_gzip_bomb(self, writer: asyncio.StreamWriter) -> None:
        body = await asyncio.to_thread(gzip_bomb, self.bomb_size)
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body),
            body,
        )

    async def _answer_one_byte_chunks(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
        )
        batch = b"1\r\nx\r\n" * _BATCH
        loop = asyncio.get_running_loop()
        start = loop.time()
        for sent in range(0, self.chunks, _BATCH):
            count = min(_BATCH, self.chunks - sent)
            await self._send(writer, batch if count == _BATCH else b"1\r\nx\r\n" * count)
            if self.chunk_rate:
                await asyncio.sleep(
                    max(0.0, start + (sent + count) / self.chunk_rate - loop.time())
                )
        await self._send(writer, b"0\r\n\r\n")

    async def _answer_stall_body(self, writer: asyncio.StreamWriter) -> None:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (2 * self.stall_after),
            bytes(self.stall_after),
        )
        await self._forever()

    async def _answer_silent(self, writer: asyncio.StreamWriter) -> None:
        await self._forever()

    async def _answer_no_accept(self, writer: asyncio.StreamWriter) -> None:  # pragma: no cover
        raise AssertionError("no_accept never accepts")
