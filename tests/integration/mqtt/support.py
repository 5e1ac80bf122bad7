"""Real MQTT peers on loopback: Debian's mosquitto, and the plugin's real mqttmux proxy.

:class:`Mosquitto` runs ``mosquitto`` with three loopback listeners: plain MQTT (mosquitto
2.0.11 will not start a WebSocket listener alone), a WebSocket listener, and the "printer's
broker" as a Bambu Lab printer serves it (TLS with a self-signed certificate, user ``bblp``,
the access code as password, an ACL that allows only ``device/#``).

:class:`MuxRelay` plays OctoEverywhere's relay in front of the plugin's REAL proxy
(``octoeverywhere/mqttmux``: ``MqttRelayWebSocketProxyProviderBuilder`` →
``MqttRelayWebSocketProxy`` → ``WebSocketRelayClient`` → ``MqttUpstreamMux`` on paho-mqtt),
extracted at test time from the local copy of the plugin's source (``OE_PLUGIN_MIRROR``, a
bare git directory) and never committed. Only the leaf modules that ``interfaces.py`` imports
for other interfaces (HTTP results, webcam settings, the flatbuffers context) are stubbed;
the proxy, the mux, the codec, ``buffer.py`` and ``interfaces.py`` are the plugin's own.
The mux connects to the TLS listener exactly as the plugin's ``BambuClient`` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import importlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trustme
from aiohttp import WSMsgType, web
from yarl import URL

from oe_async.auth import BasicAuth
from oe_async.testing import SECRET_MARKER

MIRROR = Path(
    os.environ.get("OE_PLUGIN_MIRROR", "/work/.mirror/QuinnDamerell+OctoPrint-OctoEverywhere/repo")
)
PROXY_PATH = "/octoeverywhere-command-api/proxy/mqtt"
#: What the plugin's proxy needs of its package; everything else stays in the mirror.
_PLUGIN_FILES = (
    "octoeverywhere/__init__.py",
    "octoeverywhere/buffer.py",
    "octoeverywhere/interfaces.py",
    "octoeverywhere/mqttmux",
)
#: Leaf modules interfaces.py imports for interfaces the proxy never uses (they pull in
#: requests, sentry and flatbuffers): stubbed with the names interfaces.py takes from them.
_STUBS = {
    "octoeverywhere/httpresult.py": "class HttpResult: ...\nHttpResultOrNone = None\n",
    "octoeverywhere/snapshotresizeparams.py": "class SnapshotResizeParams: ...\n",
    "octoeverywhere/Webcam/__init__.py": "",
    "octoeverywhere/Webcam/webcamsettingitem.py": "class WebcamSettingItem: ...\n",
    "octoeverywhere/Proto/__init__.py": "",
    "octoeverywhere/Proto/HttpInitialContext.py": "class HttpInitialContext: ...\n",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts on 127.0.0.1:``port`` (call it off the event loop)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def extract_plugin(dest: Path) -> str | None:
    """Extract the plugin's proxy into ``dest``; None, or why it cannot be done."""
    if not MIRROR.exists():
        return f"the plugin's source is not at {MIRROR} (set OE_PLUGIN_MIRROR)"
    try:
        archive = subprocess.run(
            ["git", "-C", str(MIRROR), "archive", "HEAD", *_PLUGIN_FILES],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        return f"cannot extract the plugin's proxy from {MIRROR}: {err}"
    for name, text in _STUBS.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return None


class Mosquitto:
    """Debian's mosquitto on loopback (see the module docstring). Blocking: use off the loop."""

    def __init__(self, workdir: Path, ca: trustme.CA) -> None:
        self.workdir = workdir
        self.tcp_port = free_port()
        self.ws_port = free_port()
        self.ws_auth_port = free_port()
        self.tls_port = free_port()
        self.access_code = f"{SECRET_MARKER}-{secrets.token_hex(4)}"
        self.process: subprocess.Popen[bytes] | None = None
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        password_file = workdir / "passwords"
        password_file.write_text("")
        subprocess.run(
            ["mosquitto_passwd", "-b", str(password_file), "bblp", self.access_code],
            check=True,
            capture_output=True,
        )
        (workdir / "acl").write_text("user bblp\ntopic readwrite device/#\n")
        (workdir / "mosquitto.conf").write_text(
            # As root, stay root: the files live under pytest's 0700 temporary directory.
            "user root\nper_listener_settings true\n"
            f"listener {self.tcp_port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n"
            f"listener {self.ws_auth_port} 127.0.0.1\nprotocol websockets\n"
            f"allow_anonymous false\npassword_file {password_file}\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"certfile {workdir / 'cert.pem'}\nkeyfile {workdir / 'key.pem'}\n"
            f"allow_anonymous false\npassword_file {password_file}\n"
            f"acl_file {workdir / 'acl'}\n"
        )

    @property
    def ws_url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.ws_port}")

    @property
    def ws_auth_url(self) -> URL:
        """A WebSocket listener that wants ``bblp`` and the access code."""
        return URL(f"http://127.0.0.1:{self.ws_auth_port}")

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.workdir / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            for port in (self.tcp_port, self.ws_port, self.ws_auth_port, self.tls_port):
                wait_for_port(port)
        except OSError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log()}") from None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=20)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP/SIGCONT: a broker that stops answering (its connections stay up)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")


class MuxRelay:
    """OctoEverywhere's relay in front of the plugin's real MQTT proxy (see the docstring).

    Checks the App Connection ``Authorization`` (606 without it), echoes the ``mqtt``
    sub-protocol, feeds the proxy each client message on one worker thread (in order, as
    the plugin's own WebSocket thread does) and sends what the proxy emits back; when the
    proxy closes the stream, the client's socket is closed (code 1000).
    """

    def __init__(
        self, plugin_dir: Path, broker: Mosquitto, serial: str, *, subscribe_timeout: float = 2.0
    ) -> None:
        if str(plugin_dir) not in sys.path:
            sys.path.insert(0, str(plugin_dir))
        self._mux_module = importlib.import_module("octoeverywhere.mqttmux.mux")
        self._relay_module = importlib.import_module("octoeverywhere.mqttmux.relayproxy")
        self._registry = importlib.import_module("octoeverywhere.mqttmux.muxregistry")
        self._buffer = importlib.import_module("octoeverywhere.buffer").Buffer
        self._opcodes = importlib.import_module("octoeverywhere.interfaces").WebSocketOpCode
        self.broker = broker
        self.serial = serial
        self.subscribe_timeout = subscribe_timeout
        self.auth = BasicAuth(f"{SECRET_MARKER}-user", f"{SECRET_MARKER}-{secrets.token_hex(8)}")
        # The plugin logs topics (the serial number in them): its records stay here, out of
        # the suite's secret canary, which watches what oe_async logs.
        self.logger = logging.getLogger(f"plugin.mqttmux.{serial[-6:]}")
        self.logger.propagate = False
        self.log = _Records()
        self.logger.addHandler(self.log)
        self.url = URL()
        self.streams = 0
        self._runner: web.AppRunner | None = None
        self._mux: Any = None
        self._next_stream = 0

    def _context(self) -> Any:
        # What bambu_octoeverywhere/bambuclient.py builds for a printer on the LAN.
        return self._mux_module.MqttConnectionContext(
            host="127.0.0.1",
            port=self.broker.tls_port,
            username="bblp",
            password=self.broker.access_code,
            use_tls=True,
            allow_invalid_cert=True,
            transport="tcp",
            keep_alive_sec=5,
        )

    @property
    def mux(self) -> Any:
        return self._mux

    def upstream_connected(self) -> bool:
        return bool(self._mux is not None and self._mux.IsUpstreamConnected())

    async def start(self) -> None:
        self._mux = self._mux_module.MqttUpstreamMux(
            logger=self.logger,
            printer_key=self.serial,
            connection_context_provider=self._context,
            subscribe_timeout_sec=self.subscribe_timeout,  # the plugin waits 15 s
            publish_timeout_sec=20.0,
            backoff_min_sec=0.2,
            backoff_max_sec=1.0,
        )
        self._registry.MqttMuxRegistry.Register(self.serial, self._mux)
        self._mux.Start()
        app = web.Application()
        app.router.add_get(PROXY_PATH, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = URL(f"http://127.0.0.1:{self._runner.addresses[0][1]}")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._mux is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._mux.Shutdown)
            self._registry.MqttMuxRegistry.Unregister(self.serial)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self.auth.header_value.encode()):
            return web.Response(status=606, text="OctoEverywhere status 606")
        ws = web.WebSocketResponse(protocols=("mqtt",), autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.streams += 1
        self._next_stream += 1
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[tuple[bytes, bool] | None] = asyncio.Queue()

        def on_data(_ws: Any, buffer: Any, opcode: Any) -> None:
            data = bytes(buffer.GetBytesLike())
            loop.call_soon_threadsafe(outbox.put_nowait, (data, opcode == self._opcodes.BINARY))

        def on_close(_ws: Any) -> None:
            loop.call_soon_threadsafe(outbox.put_nowait, None)

        builder = self._relay_module.MqttRelayWebSocketProxyProviderBuilder(
            self.logger, self.serial
        )
        provider = builder.GetCommandWebsocketProvider(None)
        proxy = provider.GetWebsocketObject(
            self._next_stream,
            PROXY_PATH,
            0,
            None,
            onWsOpen=lambda _ws: None,
            onWsData=on_data,
            onWsClose=on_close,
            onWsError=lambda _ws, _err: None,
        )
        proxy.RunAsync()
        worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mux-relay-feed")

        async def to_client() -> None:
            while (item := await outbox.get()) is not None:
                data, binary = item
                if binary:
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(data.decode())
            await ws.close(code=1000)

        sender = asyncio.ensure_future(to_client())
        try:
            async for message in ws:
                if message.type is WSMsgType.BINARY:
                    chunk = self._buffer(message.data)
                    await loop.run_in_executor(worker, proxy.Send, chunk, None, None, True)
                elif message.type is WSMsgType.TEXT:
                    chunk = self._buffer(message.data.encode())
                    await loop.run_in_executor(worker, proxy.Send, chunk, None, None, False)
                if sender.done():
                    break
        finally:
            await loop.run_in_executor(worker, proxy.Close)
            worker.shutdown(wait=False)
            await asyncio.wait({sender}, timeout=5)
            sender.cancel()
            await ws.close()
        return ws


class _Records(logging.Handler):
    """Keeps the plugin's log records (formatted) for a failing test to show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def mosquitto_missing() -> str | None:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        return "mosquitto is not installed (make integration-mqtt installs it)"
    return None
