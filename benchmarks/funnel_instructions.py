"""Request-funnel cost in CPU instructions: small JSON GETs, oe_async vs raw aiohttp.

``benchmarks/funnel.py`` times both sides, and on a shared 2-core VM its ratio moves by
+/-10% from run to run. This one counts instructions with valgrind's callgrind, which gives
the same figure for the same work whatever else the machine is doing. The client runs under
callgrind four times (raw aiohttp and oe_async, 0 and ``--requests`` GETs of /api/version
against the simulator in a separate, unmeasured process); the difference between the 0 and
the N run of each side is its cost per request. Prints both and their ratio (raw / oe_async:
1.0 means the funnel adds nothing). Needs valgrind (Debian package ``valgrind``).

    .venv/bin/python benchmarks/funnel_instructions.py [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLIENT = """
import asyncio, sys
sys.path.insert(0, {here!r})
from _common import simulator_process
import aiohttp
from oe_async import AppConnection, OctoEverywhere

async def main(mode, count):
    with simulator_process() as announced:
        conn = AppConnection.from_dict(announced["app_connection"])
        url = conn.url / "api" / "version"
        auth = {{"Authorization": conn.auth.header_value}}
        async with aiohttp.ClientSession() as session, OctoEverywhere(
            announced["app_id"], session=session, app_api_url=announced["app_api_url"],
            allow_insecure_loopback=True,
        ) as oe:
            printer = oe.printer(conn)

            async def raw():
                async with session.get(url, headers=auth) as resp:
                    resp.raise_for_status()
                    await resp.json()

            async def via_oe():
                await printer.get_json("/api/version")

            for _ in range(20):  # warm both paths (imports, pools, caches) in every run
                await raw()
                await via_oe()
            one = raw if mode == "raw" else via_oe
            for _ in range(count):
                await one()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def instructions(mode: str, count: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            CLIENT.format(here=str(HERE)),
            mode,
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
        # The same string hashes in every run: one less source of run-to-run drift.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError("callgrind printed no instruction count")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind); skipping")
        return
    per_request = {}
    for mode in ("raw", "oe"):
        base = instructions(mode, 0)
        total = instructions(mode, args.requests)
        per_request[mode] = (total - base) / args.requests
        print(f"{mode:3s}: {per_request[mode]:,.0f} instructions per request")
    print(f"ratio raw aiohttp / oe_async: {per_request['raw'] / per_request['oe']:.3f}")


if __name__ == "__main__":
    main()
