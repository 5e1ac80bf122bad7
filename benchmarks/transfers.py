"""1 GiB download and upload: oe_async vs raw aiohttp against the same server, same run.

The simulator runs in a separate process (synthetic 1 GiB file, uploads hashed and
dropped). Each round runs every contender once, alternating the order. Prints throughput
per round, the ratio of medians (oe_async / raw), the peak RSS growth and the worst event
loop lag seen while oe_async ran.

Targets: ratio >= 0.95 both ways; RSS growth < 16 MiB for 1 GiB; loop lag < 50 ms.

    .venv/bin/python benchmarks/transfers.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoopLag, alternate, median, now, rss_bytes, simulator_process

from oe_async import AppConnection, OctoEverywhere

MiB = 1024 * 1024
UPLOAD_PATH = "/octoeverywhere-command-api/files/upload?path=gcode/bench.gcode"


class RssPeak:
    """Samples RSS every 10 ms; reports the peak growth over the starting value."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start

    async def sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            await asyncio.sleep(0.01)


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as f:
        for _ in range(size // MiB):
            f.write(block)


async def run(size: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="oe-bench-"))
    source = workdir / "upload.bin"
    await asyncio.to_thread(make_file, source, size)
    extra = [
        f"--synthetic=bench.bin={size}",
        "--keep-limit=0",
        f"--max-upload={4 * size}",
        f"--max-download={4 * size}",
    ]
    try:
        with simulator_process(*extra) as announced:
            conn = AppConnection.from_dict(announced["app_connection"])
            auth = {"Authorization": conn.auth.header_value}
            download_url = conn.url / "downloads" / "files" / "local" / "bench.bin"
            upload_url = conn.url.join(URL(UPLOAD_PATH.lstrip("/")))
            timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                OctoEverywhere(
                    announced["app_id"],
                    session=session,
                    app_api_url=announced["app_api_url"],
                    allow_insecure_loopback=True,
                ) as oe,
            ):
                printer = oe.printer(conn)
                await printer.app_api.info()  # limits known: no App API call inside the timings
                lag = LoopLag()
                rss = RssPeak()
                other_lag = LoopLag()
                other_rss = RssPeak()

                async def timed(coro_factory, *, ours: bool):  # type: ignore[no-untyped-def]
                    # Both sides run the same samplers, so their cost is shared fairly.
                    sampler = asyncio.create_task((rss if ours else other_rss).sample())
                    start = now()
                    async with (lag if ours else other_lag).running():
                        await coro_factory()
                    elapsed = now() - start
                    sampler.cancel()
                    return size / MiB / elapsed

                async def oe_download() -> None:
                    received = 0
                    async with printer.files.download("/downloads/files/local/bench.bin") as chunks:
                        async for chunk in chunks:
                            received += len(chunk)
                    assert received == size

                async def raw_download() -> None:
                    received = 0
                    async with session.get(download_url, headers=auth) as resp:
                        resp.raise_for_status()
                        async for chunk in resp.content.iter_any():
                            received += len(chunk)
                    assert received == size

                async def oe_upload() -> None:
                    answer = await printer.files.upload(UPLOAD_PATH, source, raw=True)
                    assert answer.data["Result"]["SizeBytes"] == size

                async def raw_upload() -> None:
                    handle = await asyncio.to_thread(source.open, "rb")
                    try:
                        async with session.put(upload_url, data=handle, headers=auth) as resp:
                            resp.raise_for_status()
                            answer = await resp.json(content_type=None)  # plugin: text/json
                    finally:
                        await asyncio.to_thread(handle.close)
                    assert answer["Result"]["SizeBytes"] == size

                # In-memory bytes: a fast peer never makes a write wait, so only a
                # deliberate yield keeps the loop responsive (raw aiohttp for comparison).
                blob = bytes(min(size, 256 * MiB))
                bytes_lag, raw_bytes_lag = LoopLag(0.001), LoopLag(0.001)
                async with bytes_lag.running():
                    await printer.files.upload(UPLOAD_PATH, blob, raw=True)
                async with (
                    raw_bytes_lag.running(),
                    session.put(upload_url, data=blob, headers=auth) as resp,
                ):
                    resp.raise_for_status()
                del blob

                results = await alternate(
                    rounds,
                    {
                        "download oe_async": lambda: timed(oe_download, ours=True),
                        "download raw": lambda: timed(raw_download, ours=False),
                        "upload oe_async": lambda: timed(oe_upload, ours=True),
                        "upload raw": lambda: timed(raw_upload, ours=False),
                    },
                )
    finally:
        await asyncio.to_thread(source.unlink)
        await asyncio.to_thread(workdir.rmdir)

    print(f"size: {size / MiB:.0f} MiB, rounds: {rounds}")
    for name, values in results.items():
        print(f"{name:18s} MiB/s: " + ", ".join(f"{v:,.0f}" for v in values))
    down = median(results["download oe_async"]) / median(results["download raw"])
    up = median(results["upload oe_async"]) / median(results["upload raw"])
    growth = (rss.peak - rss.start) / MiB
    print(f"download ratio oe_async / raw: {down:.2f}  (target >= 0.95)")
    print(f"upload ratio oe_async / raw:   {up:.2f}  (target >= 0.95)")
    print(f"peak RSS growth during oe_async transfers: {growth:.1f} MiB  (target < 16 MiB)")
    print(
        f"worst event-loop lag during oe_async transfers: {lag.worst * 1000:.1f} ms"
        "  (target < 50 ms)"
    )
    print(
        f"worst event-loop lag during a {min(size, 256 * MiB) / MiB:.0f} MiB bytes upload: "
        f"oe_async {bytes_lag.worst * 1000:.1f} ms, raw aiohttp {raw_bytes_lag.worst * 1000:.1f} ms"
        "  (target < 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.size_mib * MiB, args.rounds))


if __name__ == "__main__":
    main()
