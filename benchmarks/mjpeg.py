"""MJPEG: oe_async frames() vs a hand-written Content-Length reader vs aiohttp's MultipartReader.

The client is what is measured, so the server must not be the bottleneck: a child process
sends a prebuilt buffer of ~100 KB JPEG parts with blocking ``sendall`` (kernel speed, no
per-frame Python), mjpg-streamer style (no chunked encoding) or as one HTTP chunk per part
(what aiohttp.web and some relays send), over plain http and over TLS (a trustme CA, the
test extra; the relay is https). Every contender reads the same number of frames from its
own fresh stream of the same server over the same kind of socket, keeping the latest frame
in a variable as a consumer does, in a client process of its own for each round (the C
allocator's thresholds adapt to what the process did before: sharing one process, a
contender's page faults depended on the one that ran before it); the order alternates each
round and the median round counts.

Small chunks (issue 29.4): the same server sends 100 frames of ~4 KB, or 400 KB of junk, as
one-byte HTTP chunks (a camera behind a proxy that flushes every byte; a chunk flood).
frames() is compared with a bare aiohttp ``readany()`` loop over the same bytes (what aiohttp
itself spends: the floor) and with what frames() did before (one ``readchunk()`` and one
parser feed per HTTP chunk), in client CPU per byte.

Also: the pure parser over an in-memory buffer (GB/s) and 50 streams at 15 fps from the
simulator (CPU % of one core).

Targets: frames() >= 1.0x the hand-written reader, plain and TLS; >= 1.5x MultipartReader
with per-part Content-Length, >= 1.2x without; one-byte chunks <= 1.5x aiohttp's own cost
per byte; pure parser >= 1.5 GB/s; 50 streams < 25%.

    .venv/bin/python benchmarks/mjpeg.py [--frames 3000] [--rounds 5] [--seconds 5] [--no-tls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from oe_async.testing.mjpeg_source import build_part, chunked, load_jpegs

PARTS_PER_BUFFER = 64
AUTH = BasicAuth("bench", "bench-password")
#: The small-chunk bodies: frames of the first packaged JPEG (~4 KB), and junk.
TINY_FRAMES = 100
FLOOD_BYTES = 400_000

# ---------------------------------------------------------------- the fast server (child)


def _stream_buffer(*, length: bool, chunked: bool) -> bytes:
    _, large = load_jpegs()
    quirks = frozenset() if length else frozenset({"no_length"})
    parts = [build_part(large, quirks, number=i, timestamp=0.0) for i in range(PARTS_PER_BUFFER)]
    if chunked:
        return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"".join(parts)


def _small_chunk_bodies() -> dict[str, bytes]:
    """Finite bodies in one-byte HTTP chunks: small frames, and junk."""
    small, _ = load_jpegs()
    frames = b"".join(
        build_part(small[0], frozenset(), number=i, timestamp=0.0) for i in range(TINY_FRAMES)
    )
    return {"/tiny": chunked(frames, 1), "/flood": chunked(b"x" * FLOOD_BYTES, 1)}


def _serve_one(conn: socket.socket, buffers: dict[object, bytes]) -> None:
    with contextlib.suppress(OSError), conn:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        target = request.split(b" ", 2)[1].decode()
        if target in buffers:  # a finite body in one-byte chunks
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame"
                b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + buffers[target]
            )
            return
        length, chunks = "nolength" not in target, "chunked" in target
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
            + ("Transfer-Encoding: chunked\r\n" if chunks else "Connection: close\r\n")
            + "\r\n"
        )
        conn.sendall(head.encode())
        buffer = buffers[(length, chunks)]
        while True:
            conn.sendall(buffer)


def serve(certfile: str | None) -> None:
    """Child process: print the port, then stream to every connection until it closes."""
    buffers: dict[object, bytes] = {
        (length, chunks): _stream_buffer(length=length, chunked=chunks)
        for length in (True, False)
        for chunks in (True, False)
    }
    buffers.update(_small_chunk_bodies())
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


# Every contender keeps its latest frame in a variable until the next one replaces it, as a
# consumer does (`async for frame in frames` holds it): dropping each frame at once instead
# changes how the allocator reuses the ~100 KB blocks, by up to 70 us per frame here.


async def oe_frames(printer: PrinterConnection, path: str, count: int) -> tuple[float, float]:
    meter = Meter()
    n = 0
    async with printer.webcam.frames(path) as frames:
        async for _frame in frames:
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
            _frame = await part.read()  # type: ignore[union-attr]
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
            _frame = await content.readexactly(length)
            n += 1
    return meter.done(n)


# ---------------------------------------------------------------- small chunks (issue 29.4)


async def oe_bytes(printer: PrinterConnection, path: str, size: int) -> tuple[int, float]:
    """frames() over a finite body: frames delivered, client CPU us per body byte."""
    cpu = time.process_time()
    async with printer.webcam.frames(path) as frames:
        count = sum([1 async for _ in frames])
    return count, (time.process_time() - cpu) / size * 1e6


async def per_chunk_bytes(session: aiohttp.ClientSession, url: str, size: int) -> tuple[int, float]:
    """What frames() did before: one readchunk() and one parser feed per HTTP chunk."""
    cpu = time.process_time()
    count = 0
    async with session.get(url, headers={"Authorization": AUTH.header_value}) as resp:
        parser = MJPEGParser.from_content_type(resp.headers["Content-Type"])
        while True:
            chunk, end_of_chunk = await resp.content.readchunk()
            if not chunk and not end_of_chunk:
                break
            count += len(parser.feed(chunk))
        count += len(parser.close())
    return count, (time.process_time() - cpu) / size * 1e6


async def bare_bytes(session: aiohttp.ClientSession, url: str, size: int) -> tuple[int, float]:
    """aiohttp alone: readany() until the end, no parsing (the floor)."""
    cpu = time.process_time()
    got = 0
    async with session.get(url, headers={"Authorization": AUTH.header_value}) as resp:
        while chunk := await resp.content.readany():
            got += len(chunk)
    assert got == size, (got, size)
    return 0, (time.process_time() - cpu) / size * 1e6


async def small_chunks(port: int, rounds: int) -> dict[str, dict[str, tuple[int, float]]]:
    """Client CPU per byte of one-byte chunks: frames(), the old per-chunk reader, aiohttp."""
    small, _ = load_jpegs()
    sizes = {
        "/tiny": len(build_part(small[0], frozenset(), number=1, timestamp=0.0)) * TINY_FRAMES,
        "/flood": FLOOD_BYTES,
    }
    base = f"http://127.0.0.1:{port}"
    conn = AppConnection(
        url=base, auth=AUTH, app_token="bench", id="bench", allow_insecure_loopback=True
    )
    results: dict[str, dict[str, tuple[int, float]]] = {}
    async with (
        aiohttp.ClientSession() as session,
        OctoEverywhere("bench", session=session, allow_insecure_loopback=True) as oe,
    ):
        printer = oe.printer(conn)
        for path, size in sizes.items():
            contenders = {
                "oe_async frames()": lambda p=path, n=size: oe_bytes(printer, p, n),
                "per-chunk reader (before)": lambda p=path, n=size: per_chunk_bytes(
                    session, base + p, n
                ),
                "bare aiohttp readany()": lambda p=path, n=size: bare_bytes(session, base + p, n),
            }
            await alternate(1, contenders)  # type: ignore[arg-type]  # warm-up
            runs = await alternate(rounds, contenders)  # type: ignore[arg-type]
            results[path] = {
                name: (values[0][0], median([v[1] for v in values]))  # type: ignore[index]
                for name, values in runs.items()
            }
    return results


Contender = Callable[[], Awaitable[tuple[float, float]]]


CONTENDERS = ("oe_async frames()", "aiohttp MultipartReader", "hand-written reader")


async def one_client(name: str, url: str, count: int, cafile: str | None) -> tuple[float, float]:
    """In a fresh client process: warm up, then read ``count`` frames with contender ``name``."""
    base, path = url.split("/stream", 1)
    path = "/stream" + path
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    conn = AppConnection(
        url=base, auth=AUTH, app_token="bench", id="bench", allow_insecure_loopback=True
    )
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context or True)) as session,
        OctoEverywhere("bench", session=session, allow_insecure_loopback=True) as oe,
    ):
        printer = oe.printer(conn)
        run_one: dict[str, Callable[[int], Awaitable[tuple[float, float]]]] = {
            CONTENDERS[0]: lambda n: oe_frames(printer, path, n),
            CONTENDERS[1]: lambda n: multipart_reader(session, url, n),
            CONTENDERS[2]: lambda n: length_reader(session, url, n),
        }
        await run_one[name](min(count, 200))  # warm-up: imports, TLS session, allocator
        return await run_one[name](count)


async def compare(
    port: int, count: int, rounds: int, cafile: str | None
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Each contender in a process of its own per round, order alternating.

    A process of its own, because the C allocator's thresholds (when it hands memory back to
    the kernel) adapt to everything the process allocated before: run in one process, each
    contender's page faults depended on which one ran before it (0 to 60 per frame).
    """
    base = f"{'https' if cafile else 'http'}://127.0.0.1:{port}"
    reports: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for label, query in (
        ("with Content-Length", "/stream"),
        ("with Content-Length, chunked", "/stream?chunked"),
        ("without Content-Length", "/stream?nolength"),
    ):
        names = [n for n in CONTENDERS if "nolength" not in query or n != CONTENDERS[2]]
        results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for i in range(rounds):
            for name in names if i % 2 == 0 else reversed(names):
                args = ["--client", name, "--url", base + query, "--frames", str(count)]
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    *args,
                    *(["--cafile", cafile] if cafile else []),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await proc.communicate()
                fps, cpu = json.loads(out)
                results[name].append((fps, cpu))
        reports[label] = results
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
                f"({cpu[hand] / cpu[ours]:.2f}x CPU, target >= 1.0x)"
            )
        target = 1.2 if label.startswith("without") else 1.5
        mp = "aiohttp MultipartReader"
        ratios.append(
            f"vs MultipartReader {fps[ours] / fps[mp]:.2f}x frames/s "
            f"({cpu[mp] / cpu[ours]:.2f}x CPU, target >= {target}x)"
        )
        print("  ratio oe_async: " + "   ".join(ratios))


def report_small_chunks(results: dict[str, dict[str, tuple[int, float]]]) -> None:
    print("\n=== one-byte HTTP chunks, client CPU per body byte (plain http)")
    labels = {
        "/tiny": f"{TINY_FRAMES} frames of ~4 KB (a camera behind a proxy flushing every byte)",
        "/flood": f"{FLOOD_BYTES:,} bytes of junk (a chunk flood)",
    }
    for path, figures in results.items():
        print(f"{labels[path]}:")
        floor = figures["bare aiohttp readany()"][1]
        for name, (count, us) in figures.items():
            frames = f"{count:4d} frames" if name != "bare aiohttp readany()" else " " * 11
            print(f"  {name:26s} {frames} {us:6.2f} us/byte  {us / floor:5.2f}x aiohttp's own")
        ours = figures["oe_async frames()"][1]
        print(f"  ratio oe_async: {ours / floor:.2f}x aiohttp's own cost (target <= 1.5x)")


async def run(count: int, rounds: int, seconds: float, *, tls: bool) -> None:
    with fast_server(None) as port:
        plain = await compare(port, count, rounds, None)
        tiny = await small_chunks(port, rounds)
    secure = None
    if tls:
        try:
            import trustme  # noqa: PLC0415 (the test extra)
        except ImportError:
            print("TLS case skipped: trustme is missing (pip install -e '.[test]')")
            tls = False
    if tls:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        with tempfile.TemporaryDirectory() as folder:
            certfile = str(Path(folder) / "server.pem")
            cafile = str(Path(folder) / "ca.pem")
            cert.private_key_and_cert_chain_pem.write_to_path(certfile)
            ca.cert_pem.write_to_path(cafile)
            with fast_server(certfile) as port:
                secure = await compare(port, count, rounds, cafile)
    with simulator_process("--webcam-large", "--webcam-fps=15") as announced:
        cpu_percent, frames = await concurrent_streams(announced, seconds)

    print(f"{count} frames of ~100 KB per contender per round, {rounds} rounds (+1 warm-up)")
    report("plain http", plain)
    if secure is not None:
        report("TLS", secure)
    report_small_chunks(tiny)
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
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS comparison")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--certfile", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(one_client(args.client, args.url, args.frames, args.cafile))))
        return
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            serve(args.certfile)
        return
    asyncio.run(run(args.frames, args.rounds, args.seconds, tls=not args.no_tls))


if __name__ == "__main__":
    main()
