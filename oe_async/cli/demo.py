"""``oe-async demo``: a guided tour of every capability against the embedded simulator."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from oe_async import (
    EventType,
    OctoEverywhereError,
    ReconnectPolicy,
    SubscriptionState,
    WebhookReceiver,
)
from oe_async.cli.commands import info_rows, status_rows
from oe_async.cli.output import error_line, key_value_table, progress_bar
from oe_async.models import PrinterLimits
from oe_async.testing import Simulator

__all__ = ["run_demo"]

MiB = 1024 * 1024


def _write_sample(path: Path, size: int) -> str:
    """A G-code-like file of ``size`` bytes; returns its sha256 (blocking: run off the loop)."""
    line = b"G1 X120.5 Y87.25 E0.0421 F1800 ; oe_async demo\n"
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        written = 0
        while written < size:
            chunk = (line * 4096)[: size - written]
            handle.write(chunk)
            hasher.update(chunk)
            written += len(chunk)
    return hasher.hexdigest()


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            hasher.update(block)
    return hasher.hexdigest()


async def _show_error(console: Console, what: str, printer_call: object) -> None:
    try:
        await printer_call  # type: ignore[misc]
    except OctoEverywhereError as err:
        if err.temporary:
            kind = "temporary: retry later"
        elif err.needs_user_action:
            kind = "needs the user"
        else:
            kind = "not temporary, no user action: fix the call or wait for an event"
        console.print(f"  {what}: [yellow]{type(err).__name__}[/] ({kind})")
        console.print(f"    user-facing message: {error_line(err)}")
    else:
        console.print(f"  {what}: [red]no error raised[/]")


async def run_demo(console: Console, out: Path) -> None:  # noqa: PLR0915 (a linear script)
    """Start the simulator on 127.0.0.1 and walk through the library, section by section."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    async with Simulator() as sim:
        sim.state.webcam.fps = 30
        sim.state.ws_interval = 0.1
        console.print(f"Simulator running: relay {sim.relay_url}, App API {sim.app_api_url}")
        async with sim.client() as oe:
            printer = oe.printer(sim.app_connection())

            console.print(Rule("1. Connection info and account limits (App API)"))
            info = await printer.app_api.info()
            console.print(key_value_table("App Connection", info_rows(info)))

            console.print(Rule("2. Upload with progress (streamed, file I/O off the event loop)"))
            source = out / "demo-part.gcode"
            digest = await asyncio.to_thread(_write_sample, source, 24 * MiB)
            with progress_bar(console, "upload demo-part.gcode", 24 * MiB) as progress:
                uploaded = await printer.plugin.upload_file(
                    "gcode/demo-part.gcode", source, progress=progress
                )
            console.print(
                f"  uploaded {uploaded.size_bytes} bytes to {uploaded.virtual_path}; "
                f"sha256 at the printer matches: {sim.uploads[-1].sha256 == digest}"
            )

            console.print(Rule("3. Download with progress (atomic, resumable)"))
            sim.state.transfer.drop_after = 9 * MiB  # the connection drops once mid-way...
            sim.state.transfer.drop_times = 1
            dest = out / "downloaded.gcode"
            with progress_bar(console, "download demo-part.gcode", 24 * MiB) as progress:
                await printer.plugin.download_file("gcode/demo-part.gcode", dest, progress=progress)
            same = await asyncio.to_thread(_sha256, dest) == digest
            console.print(
                f"  the download dropped once and resumed with Range; byte-identical: {same}"
            )

            console.print(Rule("4. Webcam: MJPEG frames with live fps, and a snapshot"))
            count = 0
            t0 = time.monotonic()
            async with printer.webcam.frames(
                index=0, reconnect=ReconnectPolicy(base_delay=0)
            ) as frames:
                async for _ in frames:
                    count += 1
                    if time.monotonic() - t0 >= 2.0:
                        break
            elapsed = time.monotonic() - t0
            console.print(
                f"  webcam stream: {count} frames in {elapsed:.1f} s = {count / elapsed:.1f} fps"
            )
            snapshot = await printer.webcam.snapshot(index=0)
            snapshot_path = out / "snapshot.jpg"
            await asyncio.to_thread(snapshot_path.write_bytes, snapshot.data)
            console.print(f"  snapshot saved as {snapshot_path} ({len(snapshot.data)} bytes JPEG)")

            console.print(Rule("5. Live Link"))
            link = await printer.app_api.create_live_link(expiration_hours=2)
            console.print(f"  Live Link to share: {link.short_url} (expires in 2 hours)")

            console.print(Rule("6. Printer status through the printer-agnostic plugin API"))
            status = await printer.plugin.status()
            console.print(key_value_table("Printer status", status_rows(status)))

            console.print(Rule("7. WebSocket subscription and a webhook"))
            messages: list[object] = []
            sub = printer.websocket.subscribe(
                "/websocket",
                messages.append,
                hello={
                    "jsonrpc": "2.0",
                    "method": "printer.objects.subscribe",
                    "id": 1,
                    "params": {},
                },
            )
            await sub.wait_connected(5)
            await asyncio.sleep(0.5)
            state = sub.state
            await sub.close()
            connected = "connected" if state is SubscriptionState.CONNECTED else state.value
            console.print(
                f"  WebSocket subscription: {connected}, {len(messages)} status messages in 0.5 s"
            )
            events: list[EventType] = []
            receiver = WebhookReceiver(
                lambda e: events.append(e.event_type), secret_key=sim.state.webhook.secret_key
            )
            from aiohttp import web  # noqa: PLC0415 (only the demo serves a receiver)

            app = web.Application()
            receiver.attach(app, "/hook")
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                await oe.printer(sim.app_connection()).app_api.set_notification_webhook(
                    f"http://127.0.0.1:{port}/hook"
                )
            except OctoEverywhereError as err:  # https is required outside tests
                console.print(f"  (webhook: {err})")
            await sim.deliver_webhook(int(EventType.PRINT_STARTED), FileName="demo-part.gcode")
            await receiver.drain()
            await runner.cleanup()
            console.print(f"  webhook received: {[e.name for e in events]}")

            console.print(Rule("8. Error translation: what an app shows its users"))
            sim.state.printer_online = False
            await _show_error(console, "printer offline", printer.plugin.status())
            sim.state.printer_online = True
            sim.revoke()
            await _show_error(console, "connection revoked", printer.app_api.info())
            sim.state.connection = "ok"
            sim.state.limits = PrinterLimits(
                max_upload_bytes=8 * MiB, max_download_bytes=2**31, max_webcam_stream_seconds=300
            )
            await printer.app_api.info()  # the client remembers the new, smaller limit
            await _show_error(
                console,
                "over-limit upload (checked before sending)",
                printer.plugin.upload_file("gcode/too-big.gcode", source),
            )
            sim.state.supporter = False
            await _show_error(console, "supporter perks lost", printer.app_api.info())

    await asyncio.to_thread(os.remove, source)
    console.print(Rule())
    console.print(f"Demo finished in {time.monotonic() - started:.1f} s; files are in {out}")
