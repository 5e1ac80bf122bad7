"""MJPEG: oe_async frames() vs a hand-written Content-Length reader vs aiohttp's MultipartReader.

The client is what is measured, so the server must not be the bottleneck: a child process
sends a prebuilt buffer of ~100 KB JPEG parts with blocking ``sendall`` (kernel speed, no
per-frame Python), mjpg-streamer style (no chunked encoding) or as one HTTP chunk per part
(what aiohttp.web and some relays send). Every contender reads the same number of frames
from its own fresh stream of the same server over the same kind of socket; the order
alternates each round and the median round counts. Also: the pure parser over an in-memory
buffer (GB/s) and 50 streams at 15 fps from the simulator (CPU % of one core).

Targets: frames() >= 0.9x the hand-written reader; >= 1.5x MultipartReader with
per-part Content-Length, >= 1.2x without; pure parser >= 1.5 GB/s; 50 streams < 25%.

    .venv/bin/python benchmarks/mjpeg.py [--frames 3000] [--rounds 5] [--seconds 5] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, median, simulator_process

from oe_async import AppConnection, BasicAuth, OctoEverywhere, PrinterConnection
from oe_async.mjpeg import MJPEGParser
from oe_async.testing.mjpeg_source import build_part, load_jpegs

PARTS_PER_BUFFER = 64
AUTH = BasicAuth("bench", "bench-password")

# ---------------------------------------------------------------- the fast server (child)


def _stream_buffer(*, length: bool, chunked: bool) -> bytes:
    _, large = load_jpegs()
    quirks = frozenset() if length else frozenset({"no_length"})
    parts = [build_part(large, quirks, number=i, timestamp=0.0) for i in range(PARTS_PER_BUFFER)]
    if chunked:
        return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"".join(parts)


def _serve_one(conn: socket.socket, buffers: dict[tuple[bool, bool], bytes]) -> None:
    with contextlib.suppress(OSError), conn:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        target = request.split(b" ", 2)[1].decode()
        length, chunked = "nolength" not in target, "chunked" in target
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
            + ("Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n")
            + "\r\n"
        )
        conn.sendall(head.encode())
        buffer = buffers[(length, chunked)]
        while True:
            conn.sendall(buffer)


def serve(certfile: str | None) -> None:
    """Child process: print the port, then stream to every connection until it closes."""
    buffers = {
        (length, chunked): _stream_buffer(length=length, chunked=chunked)
        for length in (True, False)
        for chunked in (True, False)
    }
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile)
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        while True:
            conn, _ = server.accept()
            if context is not None:
                try:
                    conn = context.wrap_socket(conn, server_side=True)
                except OSError:
                    continue
            threading.Thread(target=_serve_one, args=(conn, buffers), daemon=True).start()


@contextlib.contextmanager
def fast_server(certfile: str | None) -> Iterator[int]:
    args = [sys.executable, __file__, "--serve"] + (["--certfile", certfile] if certfile else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- the contenders


class Meter:
    """Wall and process-CPU time for one contender run."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def done(self, frames: int) -> tuple[float, float]:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return frames / wall, cpu / frames * 1e6  # frames/s, CPU µs per frame


async def oe_frames(printer: PrinterConnection, path: str, count: int) -> tuple[float, float]:
    meter = Meter()
    n = 0
    async with printer.webcam.frames(path) as frames:
        async for _ in frames:
            n += 1
            if n == count:
                break
    return meter.done(n)


async def multipart_reader(
    session: aiohttp.ClientSession, url: str, count: int
) -> tuple[float, float]:
    meter = Meter()
    n = 0
    async with session.get(url, headers={"Authorization": AUTH.header_value}) as resp:
        reader = aiohttp.MultipartReader.from_response(resp)
        while n < count:
            part = await reader.next()
            if part is None:
                break
            await part.read()  # type: ignore[union-attr]
            n += 1
    return meter.done(n)


async def length_reader(
    session: aiohttp.ClientSession, url: str, count: int
) -> tuple[float, float]:
    """The smallest correct reader for well-behaved servers: boundary line, headers, body."""
    meter = Meter()
    n = 0
    async with session.get(url, headers={"Authorization": AUTH.header_value}) as resp:
        content = resp.content
        while n < count:
            length = None
            line = await content.readline()
            while line.strip() == b"" or line.startswith(b"--"):
                line = await content.readline()
            while line.strip():
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                line = await content.readline()
            assert length is not None
            await content.readexactly(length)
            n += 1
    return meter.done(n)


Contender = Callable[[], Awaitable[tuple[float, float]]]


async def compare(
    port: int, count: int, rounds: int, tls_context: ssl.SSLContext | None
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    scheme = "https" if tls_context else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    conn = AppConnection(
        url=base, auth=AUTH, app_token="bench", id="bench", allow_insecure_loopback=True
    )
    connector = aiohttp.TCPConnector(ssl=tls_context) if tls_context else aiohttp.TCPConnector()
    reports: dict[str, dict[str, list[tuple[float, float]]]] = {}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        OctoEverywhere("bench", session=session, allow_insecure_loopback=True) as oe,
    ):
        printer = oe.printer(conn)
        for label, query in (
            ("with Content-Length", "/stream"),
            ("with Content-Length, chunked", "/stream?chunked"),
            ("without Content-Length", "/stream?nolength"),
        ):
            contenders: dict[str, Contender] = {
                "oe_async frames()": lambda p=query: oe_frames(printer, p, count),
                "aiohttp MultipartReader": lambda p=query: multipart_reader(
                    session, base + p, count
                ),
            }
            if "nolength" not in query:
                contenders["hand-written reader"] = lambda p=query: length_reader(
                    session, base + p, count
                )
            await alternate(1, contenders)  # type: ignore[arg-type]  # warm-up
            reports[label] = await alternate(rounds, contenders)  # type: ignore[arg-type]
    return reports


def pure_parser(repeat: int = 5) -> dict[str, float]:
    _, large = load_jpegs()
    results = {}
    cases = (
        ("with Content-Length", frozenset(), b"frame"),
        ("scanning, boundary 'frame'", frozenset({"no_length"}), b"frame"),
        ("scanning, mjpg-streamer's", frozenset({"no_length"}), b"boundarydonotcross"),
    )
    for label, quirks, boundary in cases:
        data = b"".join(build_part(large, quirks, number=i, timestamp=0.0) for i in range(1000))
        data = data.replace(b"--frame", b"--" + boundary)
        chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        best = 0.0
        for _ in range(repeat):
            parser = MJPEGParser(boundary)
            start = time.perf_counter()
            count = sum(len(parser.feed(c)) for c in chunks) + len(parser.close())
            best = max(best, len(data) / (time.perf_counter() - start) / 1e9)
            assert count == 1000
        results[label] = best
    return results


async def concurrent_streams(announced: dict[str, Any], seconds: float) -> tuple[float, int]:
    """50 streams at 15 fps for ``seconds``: CPU % of one core, frames received."""
    conn = AppConnection.from_dict(announced["app_connection"])
    async with (
        aiohttp.ClientSession() as session,
        OctoEverywhere(
            announced["app_id"],
            session=session,
            app_api_url=announced["app_api_url"],
            allow_insecure_loopback=True,
        ) as oe,
    ):
        printer = oe.printer(conn)
        received = 0
        stop = asyncio.Event()

        async def watch() -> None:
            nonlocal received
            async with printer.webcam.frames() as frames:
                async for _ in frames:
                    received += 1
                    if stop.is_set():
                        return

        tasks = [asyncio.create_task(watch()) for _ in range(50)]
        await asyncio.sleep(1.0)  # every stream open and flowing
        start_cpu, start_wall, start_frames = time.process_time(), time.perf_counter(), received
        await asyncio.sleep(seconds)
        cpu = time.process_time() - start_cpu
        wall = time.perf_counter() - start_wall
        frames = received - start_frames
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return cpu / wall * 100, frames


def report(title: str, reports: dict[str, dict[str, list[tuple[float, float]]]]) -> None:
    print(f"\n=== {title}")
    for label, raw in reports.items():
        print(f"{label}:")
        fps = {name: median([v[0] for v in values]) for name, values in raw.items()}
        cpu = {name: median([v[1] for v in values]) for name, values in raw.items()}
        for name in raw:
            print(f"  {name:26s} {fps[name]:8,.0f} frames/s   {cpu[name]:6.0f} µs CPU/frame")
        ours = "oe_async frames()"
        ratios = []
        if "hand-written reader" in raw:
            hand = "hand-written reader"
            ratios.append(
                f"vs hand-written {fps[ours] / fps[hand]:.2f}x frames/s "
                f"({cpu[hand] / cpu[ours]:.2f}x CPU, target >= 0.9x)"
            )
        target = 1.2 if label.startswith("without") else 1.5
        mp = "aiohttp MultipartReader"
        ratios.append(
            f"vs MultipartReader {fps[ours] / fps[mp]:.2f}x frames/s "
            f"({cpu[mp] / cpu[ours]:.2f}x CPU, target >= {target}x)"
        )
        print("  ratio oe_async: " + "   ".join(ratios))


async def run(count: int, rounds: int, seconds: float, *, tls: bool) -> None:
    with fast_server(None) as port:
        plain = await compare(port, count, rounds, None)
    secure = None
    if tls:
        import trustme  # noqa: PLC0415 (a test extra; only for --tls)

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with tempfile.TemporaryDirectory() as folder:
            certfile = str(Path(folder) / "server.pem")
            cert.private_key_and_cert_chain_pem.write_to_path(certfile)
            with fast_server(certfile) as port:
                secure = await compare(port, count, rounds, context)
    with simulator_process("--webcam-large", "--webcam-fps=15") as announced:
        cpu_percent, frames = await concurrent_streams(announced, seconds)

    print(f"{count} frames of ~100 KB per contender per round, {rounds} rounds (+1 warm-up)")
    report("plain http", plain)
    if secure is not None:
        report("TLS", secure)
    print("\npure parser over an in-memory buffer (64 KiB chunks, 100 KB frames):")
    for label, rate in pure_parser().items():
        print(f"  {label:28s} {rate:.2f} GB/s  (target >= 1.5 GB/s)")
    print(
        f"\n50 concurrent streams at 15 fps for {seconds:.0f} s: {cpu_percent:.1f}% of one core, "
        f"{frames / seconds:.0f} frames/s received  (target < 25%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tls", action="store_true", help="also compare over TLS")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--certfile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            serve(args.certfile)
        return
    asyncio.run(run(args.frames, args.rounds, args.seconds, tls=args.tls))


if __name__ == "__main__":
    main()
