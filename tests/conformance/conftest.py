"""Fixtures of the conformance suite: the real plugin per platform, and a client in front.

``world`` is one test's printer: the plugin's own command handler for one platform
(:mod:`tests.conformance.platforms`) behind :class:`~tests.conformance.plugin_host.
PluginHost`, the printer side on :class:`~tests.conformance.printer_backend.
PrinterBackend`, and an oe_async ``PrinterConnection`` whose App Connection URL is the host.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import attrs
import pytest
import pytest_asyncio

from oe_async import AppConnection, BasicAuth, OctoEverywhere, PrinterConnection, RetryPolicy
from oe_async.testing.mjpeg_source import load_jpegs

from .plugin_source import PluginSource, extract, source_commit, why_unavailable

#: The platforms of the plugin (its *_octoeverywhere packages), in the report's order.
PLATFORM_NAMES: Final = ("octoprint", "moonraker", "bambu", "prusalink", "elegoo", "elegoo_cc2")
UNAVAILABLE: Final = why_unavailable()


@pytest.fixture(scope="session")
def plugin_source(tmp_path_factory: pytest.TempPathFactory) -> PluginSource:
    """The plugin's source, extracted once per session and put on ``sys.path``."""
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    source = extract(tmp_path_factory.mktemp("octoeverywhere-plugin"))
    sys.path.insert(0, str(source.root))
    # Import the plugin here, outside the event loop (importing reads files). OctoPrint's
    # import probes IPv6 with a socket it never closes: collect it while that is ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        importlib.import_module(f"{__package__}.platforms")
        gc.collect()
    return source


@pytest.fixture(scope="session")
def pool() -> Iterator[ThreadPoolExecutor]:
    """The plugin's threads (its calls block; streams hold a thread each while they run)."""
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="oe-plugin")
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    # A real camera's frame size (~100 KB): the plugin reads a stream's first 4 KiB as part
    # headers and cannot cut a smaller frame out of them (QuickCam, snapshot from stream).
    return [load_jpegs()[1]]


@attrs.define
class World:
    """One printer: the plugin (``platform``), its printer side and a client in front."""

    platform: Any
    backend: Any
    host: Any
    printer: PrinterConnection


@pytest_asyncio.fixture(params=PLATFORM_NAMES)
async def world(
    request: pytest.FixtureRequest,
    plugin_source: PluginSource,
    pool: ThreadPoolExecutor,
    jpegs: list[bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    from .platforms import PLATFORMS  # noqa: PLC0415 (the plugin is importable only now)
    from .plugin_host import PluginHost  # noqa: PLC0415
    from .printer_backend import PrinterBackend  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    async with PrinterBackend(jpegs) as backend:
        data_dir = await loop.run_in_executor(pool, tmp_path_factory.mktemp, "plugin-data")
        platform = await loop.run_in_executor(pool, PLATFORMS[request.param], backend, data_dir)
        await loop.run_in_executor(pool, platform.install)
        async with PluginHost(pool) as host:
            connection = AppConnection(
                url=host.url,
                auth=BasicAuth("relay-user", "relay-password"),
                allow_insecure_loopback=True,
            )
            async with OctoEverywhere(
                "oe-conformance",
                allow_insecure_loopback=True,
                precheck_limits=False,
                retry=RetryPolicy.never(),
            ) as oe:
                yield World(platform, backend, host, oe.printer(connection))


def pytest_report_header(config: pytest.Config) -> str:
    if UNAVAILABLE is not None:
        return f"plugin conformance: skipped ({UNAVAILABLE})"
    return f"plugin conformance: the OctoEverywhere plugin at {source_commit()}"


#: Each conformance test's outcome per platform, for the summary table.
_OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "conformance" not in report.nodeid or "[" not in report.nodeid:
        return
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    name, _, params = report.nodeid.split("::")[-1].partition("[")
    platform = next((p for p in PLATFORM_NAMES if p in params.rstrip("]").split("-")), None)
    if platform is None:
        return
    rest = "-".join(p for p in params.rstrip("]").split("-") if p != platform)
    row = name.removeprefix("test_") + (f" ({rest})" if rest else "")
    cell = {"passed": "ok", "skipped": "n/a", "failed": "FAIL"}[report.outcome]
    _OUTCOMES.setdefault(row, {})[platform] = cell


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _OUTCOMES:
        return
    write = terminalreporter.write_line
    write(f"plugin conformance at {source_commit()}")
    width = max(len(row) for row in _OUTCOMES)
    write(" " * width + "  " + " ".join(f"{p:>10}" for p in PLATFORM_NAMES))
    for row, cells in _OUTCOMES.items():
        write(f"{row:<{width}}  " + " ".join(f"{cells.get(p, '-'):>10}" for p in PLATFORM_NAMES))
