"""Request-funnel overhead: small JSON GETs through oe_async vs raw aiohttp, same server.

The simulator runs in a separate process. Both sides send the same Authorization header
on one shared connector; rounds alternate. Prints requests/s per round, the ratio of the
medians (oe_async / raw) and the median of the per-round ratios, and this process's CPU
time per request for each side (the client-side cost, which the server's speed does not
blur) with its ratio (raw / oe_async: 1.0 means the funnel costs nothing). Target: >= 0.95
for req/s (issue 14.8). ``benchmarks/funnel_instructions.py`` counts instructions instead,
which this shared machine does not blur.

    .venv/bin/python benchmarks/funnel.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, median, now, simulator_process

from oe_async import AppConnection, OctoEverywhere


async def run(requests: int, rounds: int, concurrency: int) -> None:
    with simulator_process() as announced:
        conn = AppConnection.from_dict(announced["app_connection"])
        url = conn.url / "api" / "version"
        auth = conn.auth.header_value
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

            cpu: dict[str, list[float]] = {"oe_async": [], "raw aiohttp": []}

            async def batch(one, name: str) -> float:  # type: ignore[no-untyped-def]
                sem = asyncio.Semaphore(concurrency)

                async def guarded() -> None:
                    async with sem:
                        await one()

                start, cpu0 = now(), time.process_time()
                await asyncio.gather(*(guarded() for _ in range(requests)))
                cpu[name].append((time.process_time() - cpu0) / requests * 1e6)
                return requests / (now() - start)

            async def via_oe() -> float:
                return await batch(lambda: printer.get_json("/api/version"), "oe_async")

            async def raw_one() -> None:
                async with session.get(url, headers={"Authorization": auth}) as resp:
                    resp.raise_for_status()
                    await resp.json()

            async def via_raw() -> float:
                return await batch(raw_one, "raw aiohttp")

            await via_raw()  # warm up the pool
            await via_oe()
            cpu["oe_async"].clear()
            cpu["raw aiohttp"].clear()
            results = await alternate(rounds, {"oe_async": via_oe, "raw aiohttp": via_raw})
    for name, values in results.items():
        print(f"{name:12s} req/s per round: " + ", ".join(f"{v:,.0f}" for v in values))
        print(
            f"{name:12s} client CPU per request (µs): " + ", ".join(f"{v:.0f}" for v in cpu[name])
        )
    ratio = median(results["oe_async"]) / median(results["raw aiohttp"])
    print(f"ratio oe_async / raw aiohttp (median req/s): {ratio:.2f}  (target >= 0.95)")
    # Each round's two batches ran back to back: their ratio does not see the machine's
    # slower and faster minutes, which move both medians above.
    paired = sorted(o / r for o, r in zip(results["oe_async"], results["raw aiohttp"], strict=True))
    print(
        f"ratio oe_async / raw aiohttp per round (req/s): median {median(paired):.2f}, "
        f"middle half {paired[len(paired) // 4]:.2f}-{paired[(3 * len(paired)) // 4]:.2f}"
    )
    cpu_ratio = median(cpu["raw aiohttp"]) / median(cpu["oe_async"])
    print(f"ratio raw aiohttp / oe_async (median client CPU per request): {cpu_ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
