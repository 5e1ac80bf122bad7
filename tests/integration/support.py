"""Constants and helpers shared by the real-OctoPrint integration tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from oe_async import OctoEverywhere, RetryPolicy
from oe_async.testing.relay import StandInRelay

OCTOPRINT_URL = os.environ.get("OE_OCTOPRINT_URL", "")
API_KEY = os.environ.get("OE_OCTOPRINT_API_KEY", "")
USER = os.environ.get("OE_OCTOPRINT_USER", "")
#: Retries stay on (601/network), but short, so forced faults keep the suite fast.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1)


def client_for(relay: StandInRelay, **kwargs: Any) -> OctoEverywhere:
    """A client whose App API is the relay's (the limit pre-check stays on loopback)."""
    kwargs.setdefault("retry", FAST_RETRY)
    return OctoEverywhere(
        "oe-async-integration",
        app_api_url=relay.app_api_url,
        allow_insecure_loopback=True,
        **kwargs,
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def unique_name(stem: str) -> str:
    """A file name no other test (or earlier run) uses."""
    return f"oe-async-{stem}-{uuid.uuid4().hex[:8]}.gcode"
