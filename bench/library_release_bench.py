"""Signed drug-library releases: verification cost, and publish -> in force on many gateways.

    .venv/bin/python bench/library_release_bench.py [--entries 1500] [--gateways 20] [--skip-fleet]

Part 1, verification of one release of a generated library (``--entries``, default 1,500:
Alaris' per-profile maximum), best of N, against the baseline of a plain SHA-256 of the same
file bytes (what the old pin check costs):

* canonical bytes + SHA-256 (parse with exact numbers, re-serialise);
* Ed25519 verification alone (over the signed message);
* the whole trust check (signature file, key window, canonical bytes, Ed25519);
* the whole offer as a gateway runs it (trust check + schema validation + durable commit).

Part 2, ``--gateways`` real ``pumpgw run`` processes (no pumps) on a Mosquitto of their own:
time from the retained publish on ``{prefix}/library/current`` until every gateway has
reported the release in force on its retained ``{base}/library``, against the baseline of
the same payload reaching as many plain paho subscribers (broker fan-out alone), same run.

Figures are from this machine and this run only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.druglib_bench import generate  # noqa: E402
from gateway.config.model import TrustedKeyConfig  # noqa: E402
from gateway.druglib.canonical import canonical_sha256  # noqa: E402
from gateway.druglib.holder import LibraryHolder  # noqa: E402
from gateway.druglib.load import load_library_bytes  # noqa: E402
from gateway.druglib.releases import ReleaseApplier  # noqa: E402
from gateway.druglib.signing import (  # noqa: E402
    generate_key,
    load_private_key,
    parse_signature_file,
    sign_library,
    signature_bytes,
    signed_message,
)
from gateway.druglib.state import ReleaseState  # noqa: E402
from gateway.druglib.trust import TrustList  # noqa: E402
from gateway.mqtt.library_payloads import encode_release  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_release(tmp: Path, entries: int, version: str, serial: int) -> tuple[bytes, bytes, Path]:
    priv, pub, _kid = generate_key()
    (tmp / "k.key").write_bytes(priv)
    (tmp / "k.pub").write_bytes(pub)
    data = generate(entries, random.Random(1))
    data["version"] = version
    lib = json.dumps(data, indent=2).encode()
    sig = sign_library(lib, load_private_key(tmp / "k.key"), version=version, released=date(2024, 1, 1), serial=serial)
    return lib, sig, tmp / "k.pub"


def verification(tmp: Path, entries: int, repeats: int) -> None:
    lib, sig, pub = make_release(tmp, entries, "b1", 1)
    trust = TrustList.from_config([TrustedKeyConfig(file=pub, valid_from=datetime(2020, 1, 1, tzinfo=UTC))])
    key = next(iter(trust.keys.values())).public
    parsed = parse_signature_file(sig, where="b")
    canon, _ = canonical_sha256(lib)
    message, raw = signed_message(parsed.metadata, canon), signature_bytes(parsed, where="b")
    now = datetime.now(UTC)
    counter = iter(range(10**9))

    def offer() -> None:
        # a fresh gateway database each time: the whole first application, durable commit included
        state = ReleaseState(tmp / f"o{next(counter)}.sqlite")
        applier = ReleaseApplier(trust=trust, state=state, holder=LibraryHolder(Path("b")), audit=lambda *a: None)
        assert applier.offer(lib, sig, source="bench", where="b").in_force is not None
        state.close()

    base = best_of(repeats, lambda: hashlib.sha256(lib).hexdigest())
    rows = [
        ("canonical bytes + SHA-256", best_of(repeats, lambda: canonical_sha256(lib))),
        ("Ed25519 verify alone", best_of(repeats, lambda: key.verify(raw, message))),
        (
            "trust check (sig file, key, canonical, Ed25519)",
            best_of(repeats, lambda: trust.verify(lib, sig, where="b", now=now)),
        ),
        (
            "for scale: today's pinned load (pin + validation)",
            best_of(
                max(3, repeats // 4),
                lambda: load_library_bytes(
                    lib, path=Path("b"), expected_sha256=hashlib.sha256(lib).hexdigest(), require_released=True
                ),
            ),
        ),
        ("whole offer (trust + schema validation + commit)", best_of(max(3, repeats // 4), offer)),
    ]
    print(f"library: {entries} entries, {len(lib) / 1024:.0f} KiB; best of {repeats}")
    print(f"  {'baseline: SHA-256 of the file bytes':50s} {base * 1e3:9.3f} ms   1.0x")
    for name, t in rows:
        print(f"  {name:50s} {t * 1e3:9.3f} ms {t / base:6.1f}x")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscriber(port: int, topics: list[str], inbox: queue.Queue) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    ready = queue.Queue()
    c.on_message = lambda _c, _u, m: inbox.put((time.perf_counter(), m.topic, bytes(m.payload), m.retain))
    c.on_subscribe = lambda *_a: ready.put(1)
    c.on_connect = lambda cl, *_a: cl.subscribe([(t, 1) for t in topics])
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    ready.get(timeout=10)
    return c


def publish(port: int, topic: str, payload: bytes) -> float:
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    start = time.perf_counter()
    c.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    return start


def fleet(tmp: Path, entries: int, n: int) -> None:
    port = free_port()
    (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen] = []
    clients: list[paho.Client] = []
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        lib, sig, pub = make_release(tmp, entries, "fleet-1", 1)
        payload = encode_release(lib, sig, published_at=datetime.now(UTC))
        # baseline: the same payload to n plain subscribers
        inbox: queue.Queue = queue.Queue()
        clients = [subscriber(port, ["bench/baseline"], inbox) for _ in range(n)]
        start = publish(port, "bench/baseline", payload)
        last = max(inbox.get(timeout=30)[0] for _ in range(n))
        baseline = last - start
        for c in clients:
            c.disconnect()
            c.loop_stop()
        # n gateways
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        reports: queue.Queue = queue.Queue()
        watcher = subscriber(port, ["pumpgw/v1/bench/+/library", "pumpgw/v1/bench/+/status"], reports)
        clients = [watcher]
        for i in range(n):
            cfg = tmp / f"gw{i}.toml"
            cfg.write_text(f"""
[gateway]
site = "bench"
ward = "w"
gateway_id = "gw{i:02d}"
eui64 = "001BC50C0000B{i:03X}"
[outbox]
path = "{tmp / f"gw{i}" / "outbox.sqlite"}"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
[library]
trusted_keys = [{{ file = "{pub}", valid_from = "2020-01-01T00:00:00Z" }}]
[logging]
level = "warning"
format = "json"
""")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway", "run", "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL
                )
            )
        online: set[str] = set()
        while len(online) < n:
            _t, topic, body, _r = reports.get(timeout=120)
            if topic.endswith("/status") and json.loads(body)["state"] == "online":
                online.add(topic)
        start = publish(port, "pumpgw/v1/library/current", payload)
        applied: dict[str, float] = {}
        while len(applied) < n:
            t, topic, body, _r = reports.get(timeout=120)
            if topic.endswith("/library") and json.loads(body)["version"] == "fleet-1":
                applied[topic] = t - start
        times = sorted(applied.values())
        print(
            f"publish -> in force, {n} gateway processes, library {entries} entries ({len(payload) / 1024:.0f} KiB payload)"
        )
        print(f"  baseline: payload delivered to {n} plain subscribers  {baseline * 1e3:8.1f} ms   1.0x")
        print(
            f"  first gateway in force                               {times[0] * 1e3:8.1f} ms {times[0] / baseline:6.1f}x"
        )
        print(
            f"  median gateway in force                              {times[n // 2] * 1e3:8.1f} ms {times[n // 2] / baseline:6.1f}x"
        )
        print(
            f"  last (all {n}) in force                               {times[-1] * 1e3:8.1f} ms {times[-1] / baseline:6.1f}x"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.terminate()
        broker.wait(5)


def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--skip-fleet", action="store_true", help="only the verification cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        verification(Path(tmp), args.entries, args.repeats)
        if not args.skip_fleet:
            fleet(Path(tmp), args.entries, args.gateways)


if __name__ == "__main__":
    main()
