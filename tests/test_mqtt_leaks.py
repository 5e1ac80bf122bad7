"""Leak checks for MQTT: tests/test_leaks.py's start-and-cancel cycles on printer.mqtt.

The same harness (the simulator in a child process, ``OE_LEAK_CYCLES`` cycles cancelled at
three points in turn, then connections, file descriptors, traced memory, "unclosed" warnings
and tasks counted): a session subscribed through the simulator's MQTT proxy, and a
background subscription.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oe_async import PrinterConnection

from . import test_leaks

remote_simulator = test_leaks.remote_simulator  # the fixture, shared


async def mqtt_session(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    async with printer.mqtt.connect() as mq:
        await mq.subscribe("device/+/report")
        flowing.set()
        async for _ in mq:
            pass


async def mqtt_subscription(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    sub = printer.mqtt.subscribe("device/+/report", lambda message: None)
    try:
        await sub.wait_connected()
        flowing.set()
        await test_leaks.forever()
    finally:
        await sub.close()


test_leaks.OPERATIONS.update({"mqtt_session": mqtt_session, "mqtt_subscription": mqtt_subscription})


@pytest.mark.parametrize("name", ["mqtt_session", "mqtt_subscription"])
async def test_mqtt_start_cancel_cycles_leak_nothing(
    name: str, remote_simulator: dict[str, Any], reliability_report: dict[str, Any]
) -> None:
    await test_leaks.test_start_cancel_cycles_leak_nothing(
        name, remote_simulator, reliability_report
    )
