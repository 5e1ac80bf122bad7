"""The suite's own guards catch what they claim to (negative controls).

Every test runs under the blocking-call guard (blockbuster) and the secret canary
(tests/canary.py); these tests prove each would fail a test that misbehaves.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from blockbuster import BlockingError
from hypothesis import given
from hypothesis import strategies as st

from oe_async import AppConnection, BasicAuth, OctoEverywhere
from oe_async.errors import CommunicationError
from oe_async.models import WebcamInfo
from oe_async.testing import SECRET_MARKER, Simulator

from .canary import SecretWatch, library_classes

HERE = Path(__file__)

BLOCKING: dict[str, Callable[[], object]] = {
    "open": lambda: open(HERE, "rb").close(),
    "os.stat": lambda: os.stat(HERE),
    "Path.read_bytes": HERE.read_bytes,
    "Path.read_text": HERE.read_text,
    # In a directory that does not exist: should the guard miss, nothing is created.
    "Path.write_bytes": lambda: (HERE.parent / "no-such-dir" / "never-written").write_bytes(b"x"),
    "os.listdir": lambda: os.listdir(HERE.parent),
    "time.sleep": lambda: time.sleep(0.001),
}


@pytest.mark.parametrize("name", list(BLOCKING))
async def test_blocking_calls_on_the_loop_fail(name: str) -> None:
    with pytest.raises(BlockingError):
        BLOCKING[name]()


def test_blocking_calls_off_the_loop_are_fine() -> None:
    os.stat(HERE)  # a sync test has no running loop: nothing to protect


async def test_the_canary_catches_each_kind_of_leak(secrets_never_leak: SecretWatch) -> None:
    secret = f"{SECRET_MARKER}-token"
    with SecretWatch() as inner:
        logging.getLogger("oe_async.test").debug("sending %s", secret)
        CommunicationError(f"failed with {secret}")
        inner.check_object(type("Leaky", (), {"__repr__": lambda self: secret})())
    kinds = sorted(line.split(":")[0] for line in inner.leaks)
    assert kinds == [
        "error chain",
        "error message",
        "log",
        "repr of CommunicationError",
        "repr of Leaky",
    ]
    secrets_never_leak.leaks.clear()  # the outer watch saw them too, on purpose


async def test_the_canary_walks_the_exception_chain(secrets_never_leak: SecretWatch) -> None:
    secret = f"{SECRET_MARKER}-header"
    with SecretWatch() as inner:
        try:
            try:
                raise ValueError({"Authorization": secret})
            except ValueError:
                raise CommunicationError("clean text") from None  # still the __context__
        except CommunicationError as err:
            inner.check_object(err)
    assert [line.split(":")[0] for line in inner.leaks] == ["error chain"]
    secrets_never_leak.leaks.clear()


async def test_the_canary_learns_each_simulators_secrets(
    secrets_never_leak: SecretWatch,
) -> None:
    async with Simulator() as sim:
        secrets = set(sim.secrets())
        assert sim.basic_auth.header_value in secrets  # encoded: cannot carry the marker
        assert secrets <= secrets_never_leak.secrets


def test_the_canary_watches_the_public_classes() -> None:
    watched = set(library_classes())
    assert {OctoEverywhere, AppConnection, BasicAuth} <= watched


@given(st.just(SECRET_MARKER))
def test_property_tests_may_echo_generated_text(name: str) -> None:
    # Hypothesis draws string constants from the repository, the marker among them: a
    # model echoing its generated input is not a leak (the canary skips property tests).
    assert SECRET_MARKER in repr(WebcamInfo(name=name))
