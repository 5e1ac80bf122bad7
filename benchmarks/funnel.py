"""Request-funnel overhead: small JSON GETs through oe_async vs raw aiohttp, same server.

The simulator runs in a separate process. Both sides send the same Authorization header
on one shared connector; rounds alternate. Prints requests/s per round and the ratio of
medians (oe_async / raw). Target: >= 0.85 (the funnel adds middleware, error decoding and
URL checks per request).

    .venv/bin/python benchmarks/funnel.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
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

            async def batch(one) -> float:  # type: ignore[no-untyped-def]
                sem = asyncio.Semaphore(concurrency)

                async def guarded() -> None:
                    async with sem:
                        await one()

                start = now()
                await asyncio.gather(*(guarded() for _ in range(requests)))
                return requests / (now() - start)

            async def via_oe() -> float:
                return await batch(lambda: printer.get_json("/api/version"))

            async def raw_one() -> None:
                async with session.get(url, headers={"Authorization": auth}) as resp:
                    resp.raise_for_status()
                    await resp.json()

            async def via_raw() -> float:
                return await batch(raw_one)

            await via_raw()  # warm up the pool
            results = await alternate(rounds, {"oe_async": via_oe, "raw aiohttp": via_raw})
    for name, values in results.items():
        print(f"{name:12s} req/s per round: " + ", ".join(f"{v:,.0f}" for v in values))
    ratio = median(results["oe_async"]) / median(results["raw aiohttp"])
    print(f"ratio oe_async / raw aiohttp (median req/s): {ratio:.2f}  (target >= 0.85)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
