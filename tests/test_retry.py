"""The one retry policy: status x method x body kind, backoff bounds, Retry-After."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, RetryPolicy
from oe_async.errors import CommunicationError, RelayError
from oe_async.testing import Simulator

from .helpers import Dropper

RETRYABLE = {600, 601, 602, 612}
NEVER = {603, 604, 605, 606, 607, 608, 609, 610, 611, 613}
STATUSES = sorted(RETRYABLE | NEVER | {500, 503, 404})
# (method, idempotent= argument, counts as idempotent)
METHODS = [
    ("GET", None, True),
    ("PUT", None, True),
    ("DELETE", None, True),
    ("POST", None, False),
    ("POST", True, True),
    ("PATCH", None, False),
    ("GET", False, False),
]
BODIES = ["none", "bytes", "json", "stream", "factory"]


def body_kwargs(kind: str) -> dict[str, Any]:
    async def stream() -> AsyncIterator[bytes]:
        yield b"chunk"

    return {
        "none": {},
        "bytes": {"data": b"payload"},
        "json": {"json": {"k": "v"}},
        "stream": {"data": stream()},
        "factory": {"data": stream},
    }[kind]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(("method", "idempotent", "counts_as_idempotent"), METHODS)
@pytest.mark.parametrize("body", BODIES)
async def test_retry_matrix(
    printer: PrinterConnection,
    sim: Simulator,
    status: int,
    method: str,
    idempotent: bool | None,
    counts_as_idempotent: bool,
    body: str,
) -> None:
    sim.fail(status, path="/echo/*")
    with pytest.raises(oe_async.OctoEverywhereError) as excinfo:
        async with printer.request(
            method, "/echo/matrix", idempotent=idempotent, **body_kwargs(body)
        ):
            pass
    replayable = body != "stream"
    expected = 3 if status in RETRYABLE and counts_as_idempotent and replayable else 1
    assert len(sim.requests_to("relay", "/echo/matrix")) == expected
    if status >= 600:
        assert isinstance(excinfo.value, RelayError)
        assert excinfo.value.status == status


# aiohttp itself re-sends an idempotent method (GET, PUT...) once when the connection drops
# before any answer; our 3 attempts come on top of that, hence 6 connections for GET.
@pytest.mark.parametrize(
    ("method", "idempotent", "expected"), [("GET", None, 6), ("POST", None, 1), ("POST", True, 3)]
)
async def test_network_errors_follow_the_same_rules(
    sim: Simulator, method: str, idempotent: bool | None, expected: int
) -> None:
    async with Dropper() as dropper, sim.client(retry=RetryPolicy(base_delay=0, max_delay=0)) as oe:
        printer = oe.printer(sim.app_connection(url=dropper.url))
        with pytest.raises(CommunicationError):
            async with printer.request(method, "/x", data=b"body", idempotent=idempotent):
                pass
        assert dropper.connections == expected


async def test_attempts_are_configurable(sim: Simulator) -> None:
    async with sim.client(retry=RetryPolicy(attempts=5, base_delay=0, max_delay=0)) as oe:
        sim.fail(601, path="/api/job")
        with pytest.raises(oe_async.PrinterOfflineError):
            await oe.printer(sim.app_connection()).get_json("/api/job")
    assert len(sim.requests_to("relay", "/api/job")) == 5


async def test_a_per_request_policy_overrides_the_client(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(601, path="/api/job")
    with pytest.raises(oe_async.PrinterOfflineError):
        await printer.get_json("/api/job", retry=RetryPolicy.never())
    assert len(sim.requests_to("relay", "/api/job")) == 1


def test_backoff_is_full_jitter_within_its_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for retry in range(1, 8):
        window = min(4.0, 0.5 * 2 ** (retry - 1))
        draws = [policy.backoff(retry) for _ in range(10_000)]
        assert min(draws) >= 0.0
        assert max(draws) <= window
        assert max(draws) > window * 0.95  # the whole window is used
        assert sum(draws) / len(draws) == pytest.approx(window / 2, rel=0.05)


def test_retry_after_replaces_the_draw_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay(1, RelayError(status=601, retry_after=3.0)) == 3.0
    assert policy.delay(1, RelayError(status=601, retry_after=10.0)) == 10.0
    assert (
        policy.delay(1, RelayError(status=601, retry_after=3600.0)) is None
    )  # stop: come back later
    drawn = policy.delay(1, RelayError(status=601))
    assert drawn is not None
    assert 0 <= drawn <= policy.max_delay


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_honoured_in_both_forms(sim: Simulator, form: str) -> None:
    # Timed from before the date is written: however late the answer arrives, a retry that
    # honours the date goes out no earlier than it.
    start = time.monotonic()
    value = "1" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)
    sim.fail(601, path="/api/job", times=1, headers={"Retry-After": value})
    async with sim.client(retry=RetryPolicy(base_delay=0, max_delay=0)) as oe:
        assert (await oe.printer(sim.app_connection()).get_json("/api/job"))["state"] == "Printing"
        elapsed = time.monotonic() - start
    assert elapsed >= 0.95  # a date 2 s ahead is at least 1 s ahead at whole-second precision
    assert elapsed < 6  # 1-2 s, not the 10 s max_retry_after


async def test_a_retry_after_over_the_cap_ends_the_retries_at_once(sim: Simulator) -> None:
    sim.fail(601, path="/api/job", times=1, headers={"Retry-After": "86400"})
    async with sim.client(retry=RetryPolicy(max_retry_after=10)) as oe:
        start = time.monotonic()
        with pytest.raises(oe_async.PrinterOfflineError) as excinfo:
            await oe.printer(sim.app_connection()).get_json("/api/job")
    assert time.monotonic() - start < 5  # at once, not after 10 s (the cap) or a day
    assert excinfo.value.retry_after == 86400
    assert len(sim.requests_to("relay", "/api/job")) == 1


async def test_errors_expose_retry_after(printer: PrinterConnection, sim: Simulator) -> None:
    sim.fail(601, path="/api/job", headers={"Retry-After": "7"})
    with pytest.raises(oe_async.PrinterOfflineError) as excinfo:
        await printer.get_json("/api/job", retry=RetryPolicy.never())
    assert excinfo.value.retry_after == 7.0
    sim.fail(503, path="/api/printer", headers={"Retry-After": "9"})
    with pytest.raises(oe_async.PrinterHTTPError) as printer_err:
        await printer.get_json("/api/printer")
    assert printer_err.value.retry_after == 9.0
    assert CommunicationError("x").retry_after is None
    assert CommunicationError("x").temporary is True


def test_policy_validation() -> None:
    for kwargs in ({"attempts": 0}, {"attempts": True}, {"base_delay": -1}, {"max_delay": "1"}):
        with pytest.raises(oe_async.InvalidArgumentError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_oe_fixture_uses_the_fast_policy(oe: OctoEverywhere) -> None:
    assert oe.retry.max_delay == 0
