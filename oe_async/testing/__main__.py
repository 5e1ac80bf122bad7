"""Run the simulator standalone: ``python -m oe_async.testing [--port P]``.

Prints one JSON line (URLs, app id and the App Connection as ``AppConnection.to_dict()``,
plus ``printers``: one more per ``--printers``; with ``--tls``, ``ca_pem``: the certificate
authority to trust) so another process can connect, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from oe_async.models import PrinterLimits
from oe_async.testing.simulator import Simulator


async def serve(args: argparse.Namespace) -> None:
    """Start the simulator, announce it on stdout, and serve forever."""
    async with Simulator(relay_port=args.port, app_api_port=args.app_api_port, tls=args.tls) as sim:
        if args.keep_limit is not None:
            sim.files.keep_limit = args.keep_limit
        limits = sim.state.limits
        sim.state.limits = PrinterLimits(
            max_download_bytes=args.max_download or limits.max_download_bytes,
            max_upload_bytes=args.max_upload or limits.max_upload_bytes,
            max_webcam_stream_seconds=limits.max_webcam_stream_seconds,
        )
        sim.state.webcam.large = args.webcam_large
        if args.webcam_fps is not None:
            sim.state.webcam.fps = args.webcam_fps
        for spec in args.synthetic:
            path, _, size = spec.rpartition("=")
            sim.files.add_synthetic(path, int(size))
        for _ in range(args.printers):
            printer = await sim.add_printer()
            printer.state.webcam.large = sim.state.webcam.large
            printer.state.webcam.fps = sim.state.webcam.fps
        announcement = {
            "relay_url": str(sim.relay_url),
            "app_api_url": str(sim.app_api_url),
            "app_id": sim.app_id,
            "app_connection": sim.app_connection().to_dict(),
            "printers": [printer.app_connection().to_dict() for printer in sim.printers],
        }
        if sim.ca is not None:
            announcement["ca_pem"] = sim.ca.cert_pem
        sys.stdout.write(json.dumps(announcement) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m oe_async.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="relay port (default: any free)")
    parser.add_argument("--app-api-port", type=int, default=0, help="App API port")
    parser.add_argument(
        "--synthetic",
        action="append",
        default=[],
        metavar="PATH=BYTES",
        help="add a generated file of BYTES bytes at PATH (repeatable)",
    )
    parser.add_argument("--webcam-fps", type=float, help="webcam frames per second (0: max)")
    parser.add_argument("--webcam-large", action="store_true", help="serve ~100 KB webcam frames")
    parser.add_argument(
        "--printers", type=int, default=0, help="also serve N more printers (add_printer())"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve https with a certificate authority made for this run (needs trustme); "
        "its certificate is announced as ca_pem",
    )
    parser.add_argument("--keep-limit", type=int, help="keep uploads up to this many bytes")
    parser.add_argument("--max-upload", type=int, help="account upload limit (bytes)")
    parser.add_argument("--max-download", type=int, help="account download limit (bytes)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
