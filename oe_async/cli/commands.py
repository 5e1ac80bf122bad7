"""The ``oe-async`` commands (each an async function taking the parsed arguments)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from oe_async import OctoEverywhere, PrinterConnection
from oe_async.cli.config import CliConfig
from oe_async.cli.output import key_value_table, print_json, progress_bar, shown
from oe_async.models import AppConnection, ConnectionInfo
from oe_async.plugin_models import PrinterStatus
from oe_async.retry import ReconnectPolicy
from oe_async.testing import Simulator

__all__ = ["COMMANDS", "STATUS"]

#: Progress and live status go to stderr: stdout carries results (and ``--json``).
STATUS = Console(stderr=True)


@asynccontextmanager
async def connected(config: CliConfig) -> AsyncIterator[PrinterConnection]:
    """A client and printer for the stored login."""
    kwargs: dict[str, Any] = {}
    if config.app_api_url:
        kwargs["app_api_url"] = config.app_api_url
        kwargs["allow_insecure_loopback"] = config.connection.allow_insecure_loopback
    async with OctoEverywhere(config.app_id, **kwargs) as oe:
        yield oe.printer(config.connection)


def info_rows(info: ConnectionInfo) -> dict[str, Any]:
    """Info API fields for display (no secret is part of it)."""
    limits = info.limits
    return {
        "Printer": info.printer_name,
        "Online": "yes" if info.is_online else "no (the connection is valid, the printer is off)",
        "LAN IP": info.local_ip,
        "Last connected": info.last_connection_time,
        "Last disconnected": info.last_disconnect_time,
        "Max download": _size(limits.max_download_bytes),
        "Max upload": _size(limits.max_upload_bytes),
        "Max webcam stream": None
        if limits.max_webcam_stream_seconds is None
        else f"{limits.max_webcam_stream_seconds} s",
    }


def status_rows(status: PrinterStatus) -> dict[str, Any]:
    """Plugin status fields for display."""
    current = status.job.current_print
    temps = current.temps
    return {
        "State": status.job.state.value,
        "File": current.file_name,
        "Progress": None if current.progress is None else f"{current.progress:.1f} %",
        "Time left": None
        if current.time_left_sec is None
        else f"{current.time_left_sec // 60} min",
        "Layer": f"{current.current_layer} / {current.total_layers}"
        if current.current_layer is not None
        else None,
        "Hotend": _temp(temps.hotend_actual, temps.hotend_target),
        "Bed": _temp(temps.bed_actual, temps.bed_target),
        "Platform": status.platform_version,
        "Controls": ", ".join(
            str(f.name).lower() for f in type(status.features) if f and f in status.features
        )
        or "none",
    }


def _size(value: int | None) -> str | None:
    return None if value is None else f"{value / 1024**2:,.0f} MiB"


def _temp(actual: float | None, target: float | None) -> str | None:
    if actual is None:
        return None
    return f"{actual:.1f} °C" + (f" → {target:.0f} °C" if target else "")


async def cmd_login(args: argparse.Namespace, console: Console) -> CliConfig:
    """Parse the completion URL, check it works, return what to store (saved by main)."""
    text = sys.stdin.readline().strip() if args.completion_url == "-" else args.completion_url
    connection = AppConnection.from_completion_url(
        text, allow_insecure_loopback=args.allow_insecure_loopback
    )
    config = CliConfig(connection=connection, app_id=args.app_id, app_api_url=args.app_api_url)
    if not args.no_verify:
        async with connected(config) as printer:
            info = await printer.app_api.info()
        console.print(
            f"Connected to [bold]"
            f"{shown(info.printer_name or connection.printer_name or 'your printer')}"
            f"[/] ({'online' if info.is_online else 'offline'})."
        )
    return config


async def cmd_info(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async info``: the connection's state and the account limits."""
    async with connected(config) as printer:
        info = await printer.app_api.info()
    if args.json:
        print_json(console, {k.lower().replace(" ", "_"): v for k, v in info_rows(info).items()})
    else:
        console.print(key_value_table("App Connection", info_rows(info)))


async def cmd_status(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async status``: the printer-agnostic status."""
    async with connected(config) as printer:
        status = await printer.plugin.status()
    if args.json:
        print_json(
            console, {k.lower().replace(" ", "_"): v for k, v in status_rows(status).items()}
        )
    else:
        console.print(key_value_table("Printer status", status_rows(status)))


async def cmd_upload(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async upload``: send a file to the printer (plugin API), with progress."""
    source = Path(args.file)
    target = args.to or f"gcode/{source.name}"
    async with connected(config) as printer:
        with progress_bar(STATUS, f"upload {source.name}") as progress:
            uploaded = await printer.plugin.upload_file(target, source, progress=progress)
    if args.json:
        print_json(
            console, {"virtual_path": uploaded.virtual_path, "size_bytes": uploaded.size_bytes}
        )
    else:
        console.print(
            f"Uploaded to [bold]{shown(uploaded.virtual_path)}[/] ({uploaded.size_bytes} bytes)."
        )


async def cmd_download(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async download``: fetch a file atomically, with progress and resume."""
    dest = Path(args.dest) if args.dest else Path(Path(args.path).name)
    async with connected(config) as printer:
        with progress_bar(STATUS, f"download {Path(args.path).name}") as progress:
            written = await printer.plugin.download_file(args.path, dest, progress=progress)
    size = (await asyncio.to_thread(written.stat)).st_size
    if args.json:
        print_json(console, {"path": str(written), "size_bytes": size})
    else:
        console.print(f"Saved [bold]{shown(written)}[/] ({size} bytes).")


async def _default_index(printer: PrinterConnection, index: int | None) -> int:
    return index if index is not None else (await printer.plugin.webcams()).default_index


async def cmd_snapshot(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async snapshot``: save one webcam image."""
    out = Path(args.out)
    async with connected(config) as printer:
        frame = await printer.webcam.snapshot(index=await _default_index(printer, args.index))
    await asyncio.to_thread(out.write_bytes, frame.data)
    if args.json:
        print_json(
            console, {"path": str(out), "size_bytes": len(frame.data), "transform": frame.transform}
        )
    else:
        console.print(f"Saved a snapshot to [bold]{out}[/] ({len(frame.data)} bytes).")


async def cmd_stream(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async stream``: show (and optionally save) webcam frames with live fps."""
    out = Path(args.out) if args.out else None
    if out is not None:
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    count = 0
    started = time.monotonic()
    async with connected(config) as printer:
        index = await _default_index(printer, args.index)
        with Live(console=STATUS, transient=True, auto_refresh=False) as live:
            async with printer.webcam.frames(
                index=index, reconnect=ReconnectPolicy(max_failures=3)
            ) as frames:
                async for frame in frames:
                    count += 1
                    if out is not None:
                        await asyncio.to_thread(
                            (out / f"frame_{frame.index:05d}.jpg").write_bytes, frame.data
                        )
                    fps = count / max(time.monotonic() - started, 1e-6)
                    live.update(f"frames: {count}  fps: {fps:.1f}", refresh=True)
                    if count >= args.frames:
                        break
    elapsed = time.monotonic() - started
    summary = {
        "frames": count,
        "seconds": round(elapsed, 2),
        "fps": round(count / max(elapsed, 1e-6), 1),
    }
    if args.json:
        print_json(console, {**summary, "folder": str(out) if out else None})
    else:
        where = f", saved in {out}" if out else ""
        console.print(f"{count} frames in {elapsed:.1f} s ({summary['fps']} fps){where}.")


async def cmd_live_link(args: argparse.Namespace, console: Console, config: CliConfig) -> None:
    """``oe-async live-link``: create a shareable Live Link."""
    async with connected(config) as printer:
        if args.until_print_done:
            link = await printer.app_api.create_live_link(end_when_print_complete=True)
        else:
            link = await printer.app_api.create_live_link(args.hours)
    if args.json:
        print_json(console, {"live_id": link.live_id, "url": link.url, "short_url": link.short_url})
    else:
        console.print(f"Live Link: [bold]{shown(link.short_url or link.url)}[/]")


async def cmd_simulate(args: argparse.Namespace, console: Console) -> None:
    """``oe-async simulate``: run the simulator until interrupted."""
    async with (
        _stop_signals() as stopped,
        Simulator(relay_port=args.port, app_api_port=args.app_api_port) as sim,
    ):
        table = Table(
            title="oe_async simulator on 127.0.0.1", show_header=False, title_justify="left"
        )
        table.add_row("App Connection URL (relay)", str(sim.relay_url))
        table.add_row("App API base URL", str(sim.app_api_url))
        table.add_row("App id", sim.app_id)
        console.print(table)
        console.print("Log the CLI in to it (test credentials, generated for this run):")
        console.print(
            f"  oe-async login --app-id {sim.app_id} --app-api-url {sim.app_api_url} "
            f"--allow-insecure-loopback '{sim.completion_url()}'",
            soft_wrap=True,
            markup=False,
        )
        console.print("Press Ctrl-C to stop.")
        await stopped.wait()
    console.print("Simulator stopped.")


@asynccontextmanager
async def _stop_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM, handled from the moment this is entered.

    Through the loop's own signal handling, not asyncio.run's SIGINT handler: that one
    wakes the loop only when the signal lands on the main thread, so with executor threads
    alive Ctrl-C could go unnoticed until the next timer (never, for an idle simulator).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    except (NotImplementedError, RuntimeError):  # no loop signal handling (Windows)
        pass
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


COMMANDS: dict[str, Any] = {
    "info": cmd_info,
    "status": cmd_status,
    "upload": cmd_upload,
    "download": cmd_download,
    "snapshot": cmd_snapshot,
    "stream": cmd_stream,
    "live-link": cmd_live_link,
}
