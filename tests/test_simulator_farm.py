"""One simulator, many printers (issue 16.12): distinct relay hosts, credentials and App API tokens.

"One client, many printers" is how the README says to use the library; before, ``info()``
for a second printer answered 603 because the simulator held one App Connection.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from oe_async import InvalidCredentialsError
from oe_async.testing import Simulator


async def test_many_printers_on_one_client(sim: Simulator) -> None:
    printers = [await sim.add_printer() for _ in range(5)]
    await sim.add_printer(printer_name="Voron")
    assert len({p.relay_url.host for p in sim.printers}) == 6
    assert len({p.app_token for p in sim.printers}) == 6
    async with sim.client() as oe:
        conns = [oe.printer(p.app_connection()) for p in sim.printers]
        infos = await asyncio.gather(*(c.app_api.info() for c in conns))
        assert [i.printer_name for i in infos] == [f"Printer {k}" for k in range(1, 6)] + ["Voron"]
        await asyncio.gather(*(c.get_json("/api/printer") for c in conns))
        # The main simulator printer is still there, on its own host.
        main = oe.printer(sim.app_connection())
        assert (await main.app_api.info()).printer_name == sim.state.printer_name
    for p in printers:
        assert [r.path for r in p.requests if r.origin == "relay"] == ["/api/printer"]
        assert [r.path for r in p.requests if r.origin == "app_api"] == ["/api/appconnection/info"]


async def test_each_printer_has_its_own_credentials_and_state(sim: Simulator) -> None:
    a, b = await sim.add_printer(), await sim.add_printer()
    async with sim.client() as oe:
        crossed = oe.printer(a.app_connection(url=b.relay_url))
        with pytest.raises(InvalidCredentialsError):
            await crossed.get_json("/api/printer")
        b.state.printer_online = False
        ok = oe.printer(a.app_connection())
        assert isinstance(await ok.get_json("/api/printer"), dict)


async def test_an_aborted_download_logs_no_traceback(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.files.add("big.gcode", b"G1 X1\n" * 2_000_000)
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        async with printer.files.download("/downloads/files/local/big.gcode") as chunks:
            async for _ in chunks:
                break  # leave after the first chunk: the connection is dropped
    await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
