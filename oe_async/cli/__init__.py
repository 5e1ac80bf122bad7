"""The ``oe-async`` command line (needs the ``cli`` extra: ``pip install 'oe-async[cli]'``).

Expected errors print one line and exit with their family's code (see ``output.EXIT_CODES``);
only unexpected ones show a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from oe_async.cli.config import DEFAULT_APP_ID, default_config_path  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="oe-async", description="OctoEverywhere App Connections from the command line."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=default_config_path(),
        help="where the App Connection is stored (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="a guided tour against the embedded simulator")
    demo.add_argument("--out", type=Path, help="where to save the snapshot and files")

    login = sub.add_parser("login", help="store an App Connection from the portal's completion URL")
    login.add_argument("completion_url", help="the completion URL (or - to read it from stdin)")
    login.add_argument("--app-id", default=DEFAULT_APP_ID)
    login.add_argument("--app-api-url", help="App API base URL (for the simulator)")
    login.add_argument(
        "--allow-insecure-loopback",
        action="store_true",
        help="accept http:// URLs on 127.0.0.1 (the simulator)",
    )
    login.add_argument("--no-verify", action="store_true", help="do not call the Info API")

    sub.add_parser("info", help="connection state and account limits")
    sub.add_parser("status", help="printer status (printer-agnostic plugin API)")
    upload = sub.add_parser("upload", help="upload a file")
    upload.add_argument("file")
    upload.add_argument("--to", help="printer path (default gcode/<file name>)")
    download = sub.add_parser("download", help="download a file")
    download.add_argument("path", help="printer path, e.g. gcode/part.gcode")
    download.add_argument("dest", nargs="?", help="local file (default: the file's name)")
    snapshot = sub.add_parser("snapshot", help="save a webcam snapshot")
    snapshot.add_argument("out", nargs="?", default="snapshot.jpg")
    snapshot.add_argument("--index", type=int, help="webcam index (default: the printer's)")
    stream = sub.add_parser("stream", help="watch the webcam stream")
    stream.add_argument("--frames", type=int, default=30)
    stream.add_argument("--out", help="save every frame in this folder")
    stream.add_argument("--index", type=int, help="webcam index (default: the printer's)")
    live = sub.add_parser("live-link", help="create a Live Link")
    group = live.add_mutually_exclusive_group()
    group.add_argument("--hours", type=float, default=24.0)
    group.add_argument("--until-print-done", action="store_true")
    simulate = sub.add_parser("simulate", help="run the simulator for app development")
    simulate.add_argument("--port", type=int, default=0)
    simulate.add_argument("--app-api-port", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    try:
        from rich.console import Console  # noqa: PLC0415

        from oe_async.cli import commands, demo, output  # noqa: PLC0415
        from oe_async.cli.config import CliConfig  # noqa: PLC0415
    except ImportError:
        sys.stderr.write("oe-async: the CLI needs the 'cli' extra: pip install 'oe-async[cli]'\n")
        return 2
    args = _parser().parse_args(argv)
    console = Console()
    errors = Console(stderr=True)
    try:
        if args.command == "demo":
            out = args.out or Path(tempfile.mkdtemp(prefix="oe-async-demo-"))
            asyncio.run(demo.run_demo(console, out))
        elif args.command == "simulate":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(commands.cmd_simulate(args, console))
        elif args.command == "login":
            config = asyncio.run(commands.cmd_login(args, console))
            config.save(args.config)
            console.print(f"Saved the App Connection to {args.config} (readable by you only).")
        else:
            config = CliConfig.load(
                args.config,
                warn=lambda text: errors.print(
                    f"[bold yellow]warning:[/] {output.shown(text)}", highlight=False
                ),
            )
            asyncio.run(commands.COMMANDS[args.command](args, console, config))
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except Exception as err:
        code = output.exit_code(err)
        if code == output.EXIT_UNEXPECTED:
            raise
        errors.print(f"[bold red]error:[/] {output.error_line(err)}", highlight=False)
        return code
    return 0
