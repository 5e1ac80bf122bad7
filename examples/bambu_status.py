"""Print a Bambu Lab printer's status as it changes, over MQTT through OctoEverywhere.

    python examples/bambu_status.py --completion-url 'https://...complete?...' --serial 01S00C...
    python examples/bambu_status.py --simulator        # against oe_async's simulator

The App Connection comes from the portal's completion URL (see the README); the serial
number is the printer's. The status comes as MQTT pushes (no polling): a full report after
connecting, then what changed. Press Ctrl+C to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

from oe_async import (
    AppConnection,
    BambuPrinter,
    BambuReport,
    OctoEverywhere,
    OctoEverywhereError,
    SubscriptionEvent,
    SubscriptionState,
)


def describe(report: BambuReport) -> str:
    """One line for a report: state, progress, time left, temperatures."""
    parts = [report.gcode_state or "?"]
    if report.mc_percent is not None:
        parts.append(f"{report.mc_percent}%")
    if report.mc_remaining_time is not None:
        parts.append(f"{report.mc_remaining_time} min left")
    if report.layer_num is not None and report.total_layer_num:
        parts.append(f"layer {report.layer_num}/{report.total_layer_num}")
    if report.nozzle_temper is not None:
        parts.append(f"nozzle {report.nozzle_temper:.0f}/{report.nozzle_target_temper or 0:.0f}°C")
    if report.bed_temper is not None:
        parts.append(f"bed {report.bed_temper:.0f}/{report.bed_target_temper or 0:.0f}°C")
    return "  ".join(parts)


async def show_status(
    oe: OctoEverywhere, connection: AppConnection, serial: str, *, reports: int | None = None
) -> list[str]:
    """Print each report (``reports`` of them, or until cancelled); return the lines."""
    lines: list[str] = []
    done = asyncio.Event()

    def on_report(report: BambuReport) -> None:
        lines.append(describe(report))
        print(lines[-1])
        if reports is not None and len(lines) >= reports:
            done.set()

    def on_state(event: SubscriptionEvent) -> None:
        if event.state is SubscriptionState.DISCONNECTED and event.error is not None:
            print(f"(reconnecting: {event.error.message})")
        elif event.state is SubscriptionState.STOPPED:
            done.set()

    printer = oe.printer(connection)
    async with BambuPrinter(printer.mqtt, serial).watch(on_report, on_state=on_state) as watch:
        await done.wait()
        if watch.state is SubscriptionState.STOPPED:
            await watch.wait()  # raises what stopped it
    return lines


@contextlib.asynccontextmanager
async def simulated() -> AsyncIterator[tuple[OctoEverywhere, AppConnection, str]]:
    from oe_async.testing import Simulator  # noqa: PLC0415 (only for --simulator)
    from oe_async.testing.fake_mqtt import bambu_printer  # noqa: PLC0415

    async with Simulator() as sim, sim.client() as oe:
        fake = bambu_printer(sim)
        fake.push_interval = 1.0  # a live printer streams small reports
        yield oe, sim.app_connection(), fake.serial


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--completion-url")
    parser.add_argument("--serial")
    parser.add_argument("--simulator", action="store_true")
    parser.add_argument("--reports", type=int, default=None)
    args = parser.parse_args()
    try:
        if args.simulator:
            async with simulated() as (oe, connection, serial):
                await show_status(oe, connection, serial, reports=args.reports)
            return
        if not args.completion_url or not args.serial:
            parser.error("--completion-url and --serial (or --simulator)")
        async with OctoEverywhere("bambu-status-example") as oe:
            connection = AppConnection.from_completion_url(args.completion_url)
            await show_status(oe, connection, args.serial, reports=args.reports)
    except OctoEverywhereError as err:
        raise SystemExit(err.message) from None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
