"""Run the simulator standalone: ``python -m oe_async.testing [--port P]``.

Prints one JSON line (URLs, app id and the App Connection as ``AppConnection.to_dict()``)
so another process can connect, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from .simulator import Simulator


async def serve(port: int, app_api_port: int) -> None:
    """Start the simulator, announce it on stdout, and serve forever."""
    async with Simulator(relay_port=port, app_api_port=app_api_port) as sim:
        announcement = {
            "relay_url": str(sim.relay_url),
            "app_api_url": str(sim.app_api_url),
            "app_id": sim.app_id,
            "app_connection": sim.app_connection().to_dict(),
        }
        sys.stdout.write(json.dumps(announcement) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m oe_async.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="relay port (default: any free)")
    parser.add_argument("--app-api-port", type=int, default=0, help="App API port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.app_api_port))


if __name__ == "__main__":
    main()
