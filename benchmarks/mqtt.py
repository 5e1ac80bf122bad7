"""MQTT messages per second: oe_async vs paho-mqtt over WebSockets, on the same path.

Both clients go through the same stand-in relay (``oe_async.testing.relay.StandInRelay``, in
a child process, checking the App Connection credentials) in front of Debian's mosquitto
(another child process; ``apt-get install mosquitto``). Each round, each client subscribes
to a topic of its own, publishes N messages to it and receives the N back, so every message
crosses the relay and the broker twice and the client encodes one PUBLISH and decodes one.
QoS 0: fire and forget both ways. QoS 1: the client waits for its PUBACKs (with up to 20 in
flight, paho's default window) and acknowledges each message it receives. The figures:
messages per second (from the first publish to the last message received) and the client
process's CPU per message (``time.process_time``: paho's network thread included; the relay
and the broker run elsewhere). Rounds alternate which client goes first; medians printed.

    .venv/bin/python benchmarks/mqtt.py [--messages 20000] [--rounds 5] [--payload 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as paho
import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import alternate  # noqa: E402
from oe_async import AppConnection, BasicAuth, OctoEverywhere  # noqa: E402
from tests.integration.mqtt.support import Mosquitto  # noqa: E402

WINDOW = 20  # paho's default max_inflight_messages
RELAY = """
import asyncio, json, sys
from oe_async.testing.relay import StandInRelay
async def main():
    async with StandInRelay(sys.argv[1]) as relay:
        print(json.dumps({"url": str(relay.url), "user": relay.auth.username,
                          "password": relay.auth.password}), flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


@contextmanager
def mosquitto() -> Iterator[int]:
    """The integration suite's mosquitto (a WebSocket listener on loopback); its port."""
    if shutil.which("mosquitto") is None:
        sys.exit("benchmarks/mqtt.py needs mosquitto (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp), trustme.CA())
        broker.start()
        try:
            yield broker.ws_port
        finally:
            broker.stop()


@contextmanager
def relay(target_port: int) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RELAY, f"http://127.0.0.1:{target_port}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def oe_async_round(
    oe: OctoEverywhere, conn: AppConnection, qos: int, count: int, payload: bytes, tag: str
) -> tuple[float, float]:
    printer = oe.printer(conn)
    topic = f"bench/{tag}"
    async with printer.mqtt.connect(path="/mqtt", max_queued=10_000) as mq:
        await mq.subscribe(topic, qos=qos)
        cpu, start = time.process_time(), time.perf_counter()

        async def publish_all() -> None:
            if qos == 0:
                for _ in range(count):
                    await mq.publish(topic, payload)
                return
            window = asyncio.Semaphore(WINDOW)

            async def one() -> None:
                try:
                    await mq.publish(topic, payload, qos=1)
                finally:
                    window.release()

            tasks = set()
            for _ in range(count):
                await window.acquire()
                task = asyncio.ensure_future(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

        publisher = asyncio.ensure_future(publish_all())
        received = 0
        async for _ in mq.messages():
            received += 1
            if received == count:
                break
        await publisher
        return time.perf_counter() - start, time.process_time() - cpu


def paho_round(
    info: dict[str, str], qos: int, count: int, payload: bytes, tag: str
) -> tuple[float, float]:
    url = info["url"].rstrip("/")
    host, port = url.split("//")[1].split(":")
    auth = BasicAuth(info["user"], info["password"])
    topic = f"bench/{tag}"
    done, subscribed = threading.Event(), threading.Event()
    received = 0

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt", headers={"Authorization": auth.header_value})
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.max_queued_messages_set(0)
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        client.subscribe(topic, qos=qos)
        if not subscribed.wait(30):
            raise RuntimeError("paho: no SUBACK")
        cpu, start = time.process_time(), time.perf_counter()
        for _ in range(count):
            client.publish(topic, payload, qos=qos)
        if not done.wait(300):
            raise RuntimeError(f"paho: {received} of {count} messages")
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        client.disconnect()
        client.loop_stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--payload", type=int, default=256)
    args = parser.parse_args()
    payload = b"x" * args.payload
    loop = asyncio.get_running_loop()
    with mosquitto() as ws_port, relay(ws_port) as info:
        conn = AppConnection(
            url=info["url"],
            auth=BasicAuth(info["user"], info["password"]),
            allow_insecure_loopback=True,
        )
        print(f"{args.messages} messages of {args.payload} bytes, each way through the relay")
        print(f"{'':5} {'client':9} {'msg/s':>9} {'CPU us/msg':>11}")
        async with OctoEverywhere("oe-async-bench") as oe:
            for qos in (0, 1):
                count = args.messages if qos == 0 else args.messages // 4
                rounds = 0

                def contender(
                    kind: str, qos: int = qos, count: int = count
                ) -> Callable[[], Awaitable[tuple[float, float]]]:
                    async def run() -> tuple[float, float]:
                        nonlocal rounds
                        rounds += 1
                        tag = f"{kind}-{qos}-{rounds}"
                        if kind == "oe_async":
                            return await oe_async_round(oe, conn, qos, count, payload, tag)
                        return await loop.run_in_executor(
                            None, paho_round, info, qos, count, payload, tag
                        )

                    return run

                results = await alternate(
                    args.rounds, {"oe_async": contender("oe_async"), "paho": contender("paho")}
                )
                rate: dict[str, float] = {}
                cpu: dict[str, float] = {}
                for name, runs in results.items():
                    rate[name] = statistics.median(count / wall for wall, _ in runs)
                    cpu[name] = statistics.median(spent / count * 1e6 for _, spent in runs)
                    print(f"QoS {qos} {name:9} {rate[name]:9.0f} {cpu[name]:11.1f}")
                print(
                    f"QoS {qos} oe_async/paho: {rate['oe_async'] / rate['paho']:.2f}x messages/s, "
                    f"{cpu['oe_async'] / cpu['paho']:.2f}x CPU per message"
                )


if __name__ == "__main__":
    asyncio.run(main())
