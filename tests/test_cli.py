"""The oe-async command, run as a real subprocess against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import pytest_asyncio

from oe_async.models import PrinterLimits
from oe_async.testing import Simulator

from .helpers import closed_port, listdir, read_bytes, write_bytes

REPO = Path(__file__).resolve().parent.parent


@attrs.frozen
class Run:
    code: int
    out: str
    err: str


def is_jpeg(data: bytes) -> bool:
    """SOI, a frame header with sane dimensions, and EOI."""
    if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\x00").endswith(b"\xff\xd9")):
        return False
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width > 0 and height > 0
        i += 2 + length
    return False


class Cli:
    def __init__(self, home: Path, sim: Simulator) -> None:
        self.home = home
        self.sim = sim
        self.config = home / "config" / "oe-async" / "connection.json"

    async def __call__(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> Run:
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "HOME": str(self.home),
            "COLUMNS": "200",
        }
        env.pop("OE_ASYNC_CONFIG", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "oe_async",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.home,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    async def login(self) -> Run:
        return await self(
            "login",
            "--app-id",
            self.sim.app_id,
            "--app-api-url",
            str(self.sim.app_api_url),
            "--allow-insecure-loopback",
            str(self.sim.completion_url()),
        )

    def assert_no_secret(self, run: Run) -> None:
        for secret in self.sim.secrets():
            assert secret not in run.out
            assert secret not in run.err


@pytest_asyncio.fixture
async def cli(tmp_path: Path, sim: Simulator) -> AsyncIterator[Cli]:
    yield Cli(tmp_path, sim)


@pytest_asyncio.fixture
async def logged_in(cli: Cli) -> Cli:
    run = await cli.login()
    assert run.code == 0, run.err
    return cli


async def test_login_stores_the_connection_privately(cli: Cli, sim: Simulator) -> None:
    run = await cli.login()
    assert run.code == 0, run.err
    assert "Simulated Printer" in run.out
    mode = (await asyncio.to_thread(cli.config.stat)).st_mode
    folder_mode = (await asyncio.to_thread(cli.config.parent.stat)).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(folder_mode) == 0o700
    stored = json.loads(await read_bytes(cli.config))
    assert stored["connection"]["auth"]["password"] == sim.basic_auth.password
    cli.assert_no_secret(run)


async def test_login_from_stdin(cli: Cli, sim: Simulator) -> None:
    run = await cli(
        "login",
        "--no-verify",
        "--allow-insecure-loopback",
        "-",
        stdin=str(sim.completion_url()).encode() + b"\n",
    )
    assert run.code == 0, run.err
    assert sim.requests == []  # --no-verify: nothing sent
    cli.assert_no_secret(run)


async def test_info_and_status(logged_in: Cli, sim: Simulator) -> None:
    run = await logged_in("info")
    assert run.code == 0, run.err
    assert "Max upload" in run.out
    assert "1,024 MiB" in run.out
    as_json = await logged_in("--json", "info")
    assert json.loads(as_json.out)["printer"] == "Simulated Printer"
    status = await logged_in("--json", "status")
    assert json.loads(status.out)["state"] == "printing"
    for r in (run, as_json, status):
        logged_in.assert_no_secret(r)


async def test_upload_and_download(logged_in: Cli, sim: Simulator, tmp_path: Path) -> None:
    source = tmp_path / "part.gcode"
    await write_bytes(source, b"G1 X1\n" * 100_000)
    up = await logged_in("--json", "upload", str(source))
    assert up.code == 0, up.err
    assert json.loads(up.out) == {"virtual_path": "gcode/part.gcode", "size_bytes": 600_000}
    down = await logged_in("download", "gcode/part.gcode", str(tmp_path / "copy.gcode"))
    assert down.code == 0, down.err
    assert await read_bytes(tmp_path / "copy.gcode") == await read_bytes(source)


async def test_snapshot_and_stream(logged_in: Cli, sim: Simulator, tmp_path: Path) -> None:
    snap = await logged_in("snapshot", str(tmp_path / "s.jpg"))
    assert snap.code == 0, snap.err
    assert is_jpeg(await read_bytes(tmp_path / "s.jpg"))
    sim.state.webcam.fps = 50
    stream = await logged_in("--json", "stream", "--frames", "5", "--out", str(tmp_path / "frames"))
    assert stream.code == 0, stream.err
    assert json.loads(stream.out)["frames"] == 5
    frames = await listdir(tmp_path / "frames")
    assert len(frames) == 5
    assert all([is_jpeg(await read_bytes(tmp_path / "frames" / f)) for f in frames])


async def test_live_links(logged_in: Cli, sim: Simulator) -> None:
    hours = await logged_in("--json", "live-link", "--hours", "2")
    assert hours.code == 0, hours.err
    assert json.loads(hours.out)["short_url"].startswith("https://")
    follow = await logged_in("live-link", "--until-print-done")
    assert follow.code == 0, follow.err
    assert "Live Link:" in follow.out
    bad = await logged_in("live-link", "--hours", "20000")
    assert bad.code == 3
    assert "expiration_hours" in bad.err


#: Server-controlled text that a terminal or rich would act on: markup that crashes
#: (``[/nope]``), a hyperlink, screen clearing, an OSC 8 hyperlink, BEL, a C1 CSI and a
#: right-to-left override.
HOSTILE_TEXT = (
    "[/nope][link=https://evil.example]click[/link]\x1b[2J"
    "\x1b]8;;https://evil.example\x07x\x9b31m\u202eevil"
)
SHOWN_TEXT = (
    "[/nope][link=https://evil.example]click[/link]\\x1b[2J"
    "\\x1b]8;;https://evil.example\\x07x\\x9b31m\\u202eevil"
)


def assert_inert(run: Run) -> None:
    """Nothing in the output would make a terminal act (rich writes no styles to a pipe)."""
    for text in (run.out, run.err):
        for char in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert char not in text, (char, text)


async def test_server_text_is_shown_never_interpreted(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    sim.state.printer_name = HOSTILE_TEXT
    sim.state.plugin.platform_version = HOSTILE_TEXT
    login = await cli.login()  # prints the printer name the Info API answers
    assert login.code == 0, login.err
    assert f"Connected to {SHOWN_TEXT} (online)" in login.out
    info = await cli("info")  # used to crash on "[/nope]" (MarkupError, exit 1)
    assert info.code == 0, info.err
    assert SHOWN_TEXT in info.out
    as_json = await cli("--json", "info")
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out)["printer"] == HOSTILE_TEXT
    status = await cli("status")
    assert status.code == 0, status.err
    assert SHOWN_TEXT in status.out
    await write_bytes(tmp_path / "part.gcode", b"G1 X1\n")
    upload = await cli(
        "upload", str(tmp_path / "part.gcode"), "--to", "gcode/[/nope][link=e.example]p"
    )
    assert upload.code == 0, upload.err
    assert "Uploaded to gcode/[/nope][link=e.example]p (6 bytes)." in upload.out
    sim.state.plugin.failures["status"] = (785, HOSTILE_TEXT)
    failed = await cli("status")  # the plugin's error text reaches the error line
    assert failed.code == 11, failed.err
    assert failed.err.startswith("error: ")
    assert SHOWN_TEXT in failed.err
    assert "Traceback" not in failed.err
    for run in (login, info, as_json, status, upload, failed):
        assert_inert(run)
        cli.assert_no_secret(run)


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        (None, ["info"], 4, "not logged in"),
        (
            "garbage-url",
            ["login", "https://octoeverywhere.com/appportal/v1/complete?success=false"],
            3,
            "success=false",
        ),
        ("network", ["info"], 5, "cannot connect"),
        ("revoked", ["info"], 6, "oe-async login"),
        ("supporter", ["info"], 7, "nosupporterperks"),
        ("limit", ["upload", "big.gcode"], 8, "upload limit"),
        ("offline", ["status"], 9, "offline"),
        ("webcam-limit", ["snapshot"], 10, "opened too often"),
        ("plugin", ["status"], 11, "not connected to the printer's software"),
        ("not-json", ["info"], 12, "not JSON"),
    ],
)
async def test_every_error_family_has_its_own_exit_code(
    cli: Cli,
    sim: Simulator,
    tmp_path: Path,
    setup: str | None,
    args: list[str],
    code: int,
    message: str,
) -> None:
    if setup not in (None, "garbage-url"):
        assert (await cli.login()).code == 0
    if setup == "network":
        stored = json.loads(await read_bytes(cli.config))
        stored["app_api_url"] = f"http://127.0.0.1:{closed_port()}/"
        await write_bytes(cli.config, json.dumps(stored).encode())
    elif setup == "revoked":
        sim.revoke()
    elif setup == "supporter":
        sim.state.supporter = False
    elif setup == "limit":
        sim.state.limits = PrinterLimits(max_upload_bytes=1000)
        await write_bytes(tmp_path / "big.gcode", b"x" * 5000)
    elif setup == "offline":
        sim.state.printer_online = False
    elif setup == "webcam-limit":
        sim.fail(609, path="/octoeverywhere-command-api/webcam/snapshot")
    elif setup == "plugin":
        sim.state.plugin.failures["status"] = (785, "")
    elif setup == "not-json":
        sim.fail(200, origin="app_api", body=b"<html>")
    run = await cli(*args)
    assert run.code == code, (run.out, run.err)
    assert message in run.err
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert lines[0].startswith("error:"), run.err
    assert "Traceback" not in run.err
    cli.assert_no_secret(run)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_simulate_serves_until_interrupted(cli: Cli, stop: signal.Signals) -> None:
    port = closed_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "oe_async",
        "simulate",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.stdout is not None
    try:
        seen = b""
        while b"Ctrl-C" not in seen:
            seen += await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"127.0.0.1:{port}".encode() in seen
        assert b"oe-async login" in seen
        proc.send_signal(stop)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert b"Simulator stopped." in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_tours_every_capability(cli: Cli, tmp_path: Path) -> None:
    run = await cli("demo", "--out", str(tmp_path / "demo"), timeout=120)
    assert run.code == 0, run.err
    for capability in (
        "account limits",
        "Max upload",
        "Upload with progress",
        "Download with progress",
        "byte-identical: True",
        "fps",
        "snapshot saved",
        "Live Link",
        "plugin API",
        "WebSocket",
        "webhook received",
        "printer offline",
        "connection revoked",
        "over-limit upload",
        "UploadLimitError",
    ):
        assert capability in run.out, capability
    assert is_jpeg(await read_bytes(tmp_path / "demo" / "snapshot.jpg"))


def test_make_demo(tmp_path: Path) -> None:
    """`make demo` as the README runs it (the venv already exists when this suite runs)."""
    make = subprocess.run(["make", "--version"], capture_output=True, check=False)
    if make.returncode != 0:
        pytest.skip("make is not installed")
    out = tmp_path / "demo"
    run = subprocess.run(
        ["make", "-s", "demo", f"DEMO_ARGS=--out {out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Demo finished" in run.stdout
    assert is_jpeg((out / "snapshot.jpg").read_bytes())
