"""A hostile WebSocket server on loopback, in its own thread (for tests/test_websocket_hostile.py).

aiohttp's own server answers pings, honours close frames and never sends a message it cannot
frame, so this one speaks the protocol by hand: it answers the upgrade, then plays a script
of frames. Running in a thread of its own keeps its work out of the client loop's CPU time
and stalls, so a test can measure the client alone (``time.thread_time()``).

    async with HostileWebSocket(on_open=ping(b"") * 250_000) as server:
        printer = oe.printer(sim.app_connection(url=server.url))
        async with printer.websocket.connect("/websocket") as ws:
            await ws.receive()   # UnexpectedResponseError: a control-frame flood
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
import threading
from types import TracebackType
from typing import Self

from yarl import URL

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked server frame with FIN set."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


def ping(payload: bytes = b"") -> bytes:
    return frame(OP_PING, payload)


def text(data: str) -> bytes:
    return frame(OP_TEXT, data.encode())


def close(code: int) -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code))


class HostileWebSocket:
    """Answers every upgrade, sends ``on_open``, then repeats ``every`` each ``interval`` s.

    Args:
        on_open: bytes (whole frames) written right after the 101 answer.
        every: bytes written every ``interval`` seconds afterwards, forever (None: nothing).
        interval: the period of ``every``.
        answer_close: False: the client's close frame is ignored (never answered), and
            ``every`` keeps coming.
        read: False: nothing the client sends is read after the handshake (its pongs pile
            up in the socket buffers).

    """

    def __init__(
        self,
        *,
        on_open: bytes = b"",
        every: bytes | None = None,
        interval: float = 0.1,
        answer_close: bool = True,
        read: bool = True,
    ) -> None:
        self.on_open = on_open
        self.every = every
        self.interval = interval
        self.answer_close = answer_close
        self.read = read
        self.url = URL()
        #: Opcodes of the frames the client sent, in order (when ``read``).
        self.received: list[int] = []
        #: Set once the client's close frame arrived.
        self.close_seen = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="oe-hostile-ws", daemon=True)
        self._thread.start()
        port = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._listen(), loop))
        self.url = URL.build(scheme="http", host="127.0.0.1", port=port, path="/")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        assert loop is not None
        assert thread is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 (RFC 6455)
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            writer.write(self.on_open)
            reading = asyncio.ensure_future(self._read(reader, writer)) if self.read else None
            try:
                while self.every is not None:
                    await asyncio.sleep(self.interval)
                    writer.write(self.every)
                    await writer.drain()
                if reading is not None:
                    await reading
                else:
                    await asyncio.sleep(3600)
            finally:
                if reading is not None:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await reading
        except (ConnectionError, OSError, asyncio.IncompleteReadError, StopIteration):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Parse the client's (masked) frames; answer its close frame if told to."""
        while True:
            first, second = await reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await reader.readexactly(8))
            await reader.readexactly(4 + size if second & 0x80 else size)
            opcode = first & 0x0F
            self.received.append(opcode)
            if opcode == OP_CLOSE:
                self.close_seen.set()
                if self.answer_close:
                    writer.write(close(1000))
                    await writer.drain()
                    return
