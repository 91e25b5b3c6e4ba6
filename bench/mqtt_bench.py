"""Events/s through pumpgw's MQTT publish path vs bare paho QoS 1, in the same run.

    /work/venv/bin/python bench/mqtt_bench.py [--events 5000] [--inflight 20]

Starts its own Mosquitto on a free loopback port. Both sides publish QoS 1 with the same
in-flight window and wait for every PUBACK:

* baseline: paho-mqtt's own network thread (``loop_start``), pre-built payloads of the same size;
* pumpgw, the durable path exactly as the daemon runs it: ``MqttPublisher.enqueue_event``
  (payload model -> JSON -> outbox envelope -> group commit, ``synchronous=FULL``, into a fresh
  SQLite outbox in a temporary directory) and the lane sender (``Outbox.claim_many`` -> a window
  of QoS 1 publishes -> PUBACKs -> ``Outbox.finish_many``), paho driven from asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import timedelta  # noqa: E402

from gateway.config.model import MqttConfig, RetryPolicy  # noqa: E402
from gateway.events.model import EventKind, PumpEvent  # noqa: E402
from gateway.mqtt import MqttPublisher  # noqa: E402
from gateway.mqtt.payloads import event_payload  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from tests.gateway.mqtt.conftest import T0  # noqa: E402


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def events(n: int) -> list[PumpEvent]:
    return [
        PumpEvent(
            EventKind.DELIVERY_START, "bed07-a", T0 + timedelta(microseconds=i), channel_id="1", detail={"seq": str(i)}
        )
        for i in range(n)
    ]


def bare_paho(port: int, payloads: list[bytes], inflight: int) -> float:
    done = threading.Event()
    acked = 0

    def on_publish(client, userdata, mid, rc, props):  # noqa: ANN001
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages = inflight
    c.on_publish = on_publish
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    try:
        t0 = time.perf_counter()
        for p in payloads:
            c.publish("bench/bare/events", p, qos=1)
        done.wait(120)
        return time.perf_counter() - t0
    finally:
        c.disconnect()
        c.loop_stop()


async def pumpgw_path(port: int, evs: list[PumpEvent], inflight: int, db: Path, producers: int = 1) -> float:
    cfg = MqttConfig(
        enabled=True, port=port, max_inflight=inflight, retry=RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.5)
    )
    outbox = Outbox.open(db)
    pub = MqttPublisher(cfg, site="bench", gateway_id="gw", outbox=outbox, version="bench", config_hash="-")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        await pub.wait_online()
        t0 = time.perf_counter()

        async def produce(k: int) -> None:  # one producer per pump, as the pipeline runs
            for ev in evs[k::producers]:
                await pub.enqueue_event(ev)

        await asyncio.gather(*(produce(k) for k in range(producers)))
        while pub.stats.delivered < len(evs):  # counted once finish_many has committed
            await asyncio.sleep(0.005)  # the harness's own wake-ups: a few, not one a millisecond
        elapsed = time.perf_counter() - t0
        pub.stop()
    pending = sum(s.pending + s.in_flight for s in outbox.stats().values())
    outbox.close()
    assert pub.stats.delivered == len(evs) and pending == 0, (pub.stats.delivered, pending)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--inflight", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--producers",
        type=int,
        default=50,
        help="concurrent producers (pumps); their commits share group commits as in the daemon. "
        "1 = one producer awaiting each commit (the figure issue 20 started from)",
    )
    args = ap.parse_args()
    evs = events(args.events)
    payloads = [event_payload(e) for e in evs]
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_broker(Path(tmp))
        try:
            # pairs, each ours against the bare run just before it: the machine's speed drifts
            # for minutes at a time, so rounds of one kind after the other compared two moments
            pairs = []
            for i in range(args.rounds):
                b = bare_paho(port, payloads, args.inflight)
                pairs.append(
                    (b, asyncio.run(pumpgw_path(port, evs, args.inflight, Path(tmp) / f"o{i}.db", args.producers)))
                )
        finally:
            proc.terminate()
            proc.wait()
    n = args.events
    ratios = sorted(b / o for b, o in pairs)
    print(
        f"events: {n}, QoS 1, in-flight window {args.inflight}, {args.rounds} pairs, "
        f"payload ~{len(payloads[0])} B, "
        f"{args.producers} producer(s)"
    )
    print(f"bare paho (network thread):          {n / min(b for b, _ in pairs):10.0f} events/s (best)")
    print(f"pumpgw enqueue -> outbox -> broker:  {n / min(o for _, o in pairs):10.0f} events/s (best)")
    print(
        f"ratio pumpgw / bare paho:            {statistics.median(ratios):10.2f}x median of the pairs "
        f"{[round(r, 2) for r in ratios]} (goal >= 0.5x on the durable path)"
    )
    print("queue: SQLite outbox (durable group commits, synchronous=FULL)")


if __name__ == "__main__":
    main()
