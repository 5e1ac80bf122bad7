"""MJPEG: oe_async frames() vs aiohttp's MultipartReader vs a minimal Content-Length reader.

One run, the simulator in a separate process serving ~100 KB JPEG frames as fast as it can.
Each contender reads the same number of frames from its own fresh stream; rounds alternate.
Reports frames/s and client CPU per frame, with and without per-part Content-Length, the
pure parser over an in-memory buffer (GB/s), and 50 concurrent streams at 15 fps (CPU % of
one core in this process).

Targets: >= 1.5x MultipartReader with Content-Length, >= 1.2x without; pure parser
>= 1.5 GB/s; 50 streams < 25% of one core.

    .venv/bin/python benchmarks/mjpeg.py [--frames 1500] [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, median, simulator_process

from oe_async import AppConnection, OctoEverywhere, PrinterConnection
from oe_async.mjpeg import MJPEGParser
from oe_async.testing.mjpeg_source import build_part, load_jpegs


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
    session: aiohttp.ClientSession, url: str, auth: dict[str, str], count: int
) -> tuple[float, float]:
    meter = Meter()
    n = 0
    async with session.get(url, headers=auth) as resp:
        reader = aiohttp.MultipartReader.from_response(resp)
        while n < count:
            part = await reader.next()
            if part is None:
                break
            await part.read()  # type: ignore[union-attr]
            n += 1
    return meter.done(n)


async def length_reader(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str], count: int
) -> tuple[float, float]:
    """The smallest correct reader for well-behaved servers: boundary line, headers, body."""
    meter = Meter()
    n = 0
    async with session.get(url, headers=auth) as resp:
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


async def concurrent_streams(
    conn: AppConnection, announced: dict, seconds: float
) -> tuple[float, int]:
    """50 streams at 15 fps for ``seconds``: CPU % of one core, frames received."""
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


async def run(count: int, rounds: int, seconds: float) -> None:
    with simulator_process("--webcam-large", "--webcam-fps=0") as announced:
        conn = AppConnection.from_dict(announced["app_connection"])
        auth = {"Authorization": conn.auth.header_value}
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
            base = str(conn.url).rstrip("/")
            reports = {}
            for label, query in (
                ("with Content-Length", ""),
                ("without Content-Length", "&quirks=no_length"),
            ):
                path = "/webcam/?action=stream" + query
                contenders = {
                    "oe_async frames()": lambda p=path: oe_frames(printer, p, count),
                    "aiohttp MultipartReader": lambda p=path: multipart_reader(
                        session, base + p, auth, count
                    ),
                }
                if not query:
                    contenders["hand-written reader"] = lambda p=path: length_reader(
                        session, base + p, auth, count
                    )
                raw = await alternate(rounds, contenders)  # type: ignore[arg-type]
                reports[label] = raw
    with simulator_process("--webcam-large", "--webcam-fps=15") as announced:
        conn = AppConnection.from_dict(announced["app_connection"])
        cpu_percent, frames = await concurrent_streams(conn, announced, seconds)

    print(f"{count} frames of ~100 KB per contender per round, {rounds} rounds")
    for label, raw in reports.items():
        print(f"\n{label}:")
        for name, values in raw.items():
            fps = median([v[0] for v in values])  # type: ignore[index]
            cpu = median([v[1] for v in values])  # type: ignore[index]
            print(f"  {name:26s} {fps:8,.0f} frames/s   {cpu:6.0f} µs CPU/frame")
        ours = median([v[0] for v in raw["oe_async frames()"]])  # type: ignore[index]
        theirs = median([v[0] for v in raw["aiohttp MultipartReader"]])  # type: ignore[index]
        ours_cpu = median([v[1] for v in raw["oe_async frames()"]])  # type: ignore[index]
        theirs_cpu = median([v[1] for v in raw["aiohttp MultipartReader"]])  # type: ignore[index]
        target = 1.5 if label.startswith("with ") else 1.2
        print(
            f"  ratio oe_async / MultipartReader: {ours / theirs:.2f}x frames/s, "
            f"{theirs_cpu / ours_cpu:.2f}x less CPU per frame  (target >= {target}x)"
        )
    print("\npure parser over an in-memory buffer (64 KiB chunks, 100 KB frames):")
    for label, rate in pure_parser().items():
        print(f"  {label:28s} {rate:.2f} GB/s  (target >= 1.5 GB/s)")
    print(
        f"\n50 concurrent streams at 15 fps for {seconds:.0f} s: {cpu_percent:.1f}% of one core, "
        f"{frames / seconds:.0f} frames/s received  (target < 25%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(args.frames, args.rounds, args.seconds))


if __name__ == "__main__":
    main()
