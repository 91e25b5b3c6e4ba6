"""One signed release, a real Mosquitto, real `pumpgw run` gateways: every gateway applies it,
a gateway started later applies it on connect, and every bad publish is refused while the
library in force stays -- proved by what each gateway publishes retained on .../library."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.publish as paho_publish
import pytest

from gateway.druglib.canonical import canonical_sha256
from gateway.mqtt.library_payloads import encode_release
from tests.gateway.druglib.release_kit import library, one_limit_digit_changed, wait_audit_row

PREFIX = "pumpgw/v1"
CURRENT = f"{PREFIX}/library/current"

pytestmark = pytest.mark.slow


class GatewayProc:
    def __init__(self, name: str, tmp: Path, broker, pub_key: Path, cmd: list[str], env: dict) -> None:
        self.name = name
        self.db = tmp / name / "outbox.sqlite"
        self.log = tmp / f"{name}.log"
        self.config = tmp / f"{name}.toml"
        self.db.parent.mkdir(parents=True, exist_ok=True)  # pumpgw never creates the outbox folder
        self.config.write_text(f"""
[gateway]
site = "site1"
ward = "w-{name}"
gateway_id = "{name}"
eui64 = "001BC50C0000AB{abs(hash(name)) % 100:02d}"
incomplete_reason = "library distribution test: no pumps, no destinations"

[health]
enabled = false

[outbox]
path = "{tmp / name / "outbox.sqlite"}"

[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
keepalive_s = 5
connect_timeout_s = 3
retry = {{ initial_backoff_s = 0.05, max_backoff_s = 0.5 }}

[library]
trusted_keys = [{{ file = "{pub_key}", valid_from = "2020-01-01T00:00:00Z" }}]

[logging]
format = "json"
""")
        self.cmd, self.env = cmd, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._err = open(self.log, "ab")
        self.proc = subprocess.Popen([*self.cmd, "run", "--config", str(self.config)], env=self.env, stderr=self._err)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._err.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()

    def records(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def wait_log(self, predicate, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.records():
                if predicate(r):
                    return r
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no matching log line:\n{self.log.read_text()[-3000:]}")


def _seen(sub, predicate, timeout: float = 20.0, *, since: int = 0) -> tuple[str, bytes, bool]:
    """The first message in the subscriber's history (from index ``since``) matching
    ``predicate`` (several gateways publish concurrently: nothing is consumed, so no message
    hides another)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in list(sub.history)[since:]:
            if predicate(*msg):
                return msg
        time.sleep(0.05)
    raise AssertionError(f"expected MQTT message did not arrive; got {[m[0] for m in sub.history]}")


def _in_force(sub, gateway: str, version: str, timeout: float = 20.0, *, since: int = 0) -> dict:
    topic = f"{PREFIX}/site1/{gateway}/library"
    _t, payload, _r = _seen(
        sub, lambda t, p, r: t == topic and json.loads(p)["version"] == version, timeout, since=since
    )
    return json.loads(payload)


def _retained_library(make_sub, broker, gateway: str) -> dict:
    """What a fresh subscriber (the fleet) reads retained on the gateway's library topic."""
    s = make_sub(broker, [f"{PREFIX}/site1/{gateway}/library"])
    _t, payload, retained = s.next(timeout=10)
    assert retained
    return json.loads(payload)


def _refusals(gw: GatewayProc, reason: str) -> list[dict]:
    return [r for r in gw.records() if r.get("event") == "drug library release refused" and r.get("reason") == reason]


def test_one_release_reaches_every_gateway_and_bad_publishes_are_refused(
    tmp_path, make_broker, subscribe, pumpgw_cmd, subprocess_env
):
    broker = make_broker()
    pharmacy = tmp_path / "pharmacy"

    def run(*a):
        return subprocess.run(
            [*pumpgw_cmd, "library", *a], env=subprocess_env, capture_output=True, text=True, timeout=60
        )

    keygen = run("keygen", "--name", "pharmacy-2026", "--out", str(pharmacy))
    assert keygen.returncode == 0, keygen.stderr
    key, pub = pharmacy / "pharmacy-2026.key", pharmacy / "pharmacy-2026.pub"

    def release(version: str, serial: int) -> Path:
        path = pharmacy / f"library-{version}.json"
        path.write_bytes(library(version))
        signed = run("sign", str(path), "--key", str(key), "--serial", str(serial))
        assert signed.returncode == 0, signed.stderr
        return path

    def publish(path: Path) -> None:
        out = run("publish", str(path), "--broker", f"{broker.host}:{broker.port}")
        assert out.returncode == 0, out.stderr

    gateways = {n: GatewayProc(n, tmp_path, broker, pub, pumpgw_cmd, subprocess_env) for n in ("gw-a", "gw-b", "gw-c")}
    sub = subscribe(broker, [f"{PREFIX}/site1/+/library", f"{PREFIX}/site1/+/status"])
    try:
        for n in ("gw-a", "gw-b"):
            gateways[n].start()
        for n in ("gw-a", "gw-b"):
            _seen(sub, lambda t, p, r, n=n: t.endswith(f"/{n}/status") and json.loads(p)["state"] == "online", 30)

        # 1. one release, published once: both running gateways put it in force
        v1 = release("2026.12", 1)
        publish(v1)
        _, sha_v1 = canonical_sha256(v1.read_bytes())
        for n in ("gw-a", "gw-b"):
            got = _in_force(sub, n, "2026.12")
            assert (got["sha256"], got["serial"], got["source"], got["schema_version"]) == (sha_v1, 1, "mqtt", 1)

        # 2. a gateway started later applies the retained release on connect
        gateways["gw-c"].start()
        assert _in_force(sub, "gw-c", "2026.12", timeout=30)["sha256"] == sha_v1

        # 3. bad publishes: each refused by every gateway, with a log line and an audit row
        v2 = release("2027.01", 2)
        good_sig = Path(str(v2) + ".sig").read_bytes()
        tampered = encode_release(one_limit_digit_changed(v2.read_bytes()), good_sig, published_at=_now())
        whole = encode_release(v2.read_bytes(), good_sig, published_at=_now())
        v0 = release("2026.10", 0)
        bad = [
            (tampered, "SignatureError"),
            (whole[: len(whole) - 100], "ReleaseMessageError"),  # truncated
            (b"{" * (10 * 1024 * 1024), "LibraryTooLarge"),  # 10 MB, refused by size
            (
                encode_release(v0.read_bytes(), Path(str(v0) + ".sig").read_bytes(), published_at=_now()),
                "LibraryNotNewer",
            ),  # older
        ]
        for payload, reason in bad:
            paho_publish.single(CURRENT, payload, qos=1, retain=True, hostname=broker.host, port=broker.port)
            for gw in gateways.values():
                gw.wait_log(
                    lambda r, reason=reason: (
                        r.get("event") == "drug library release refused" and r.get("reason") == reason
                    )
                )
                wait_audit_row(
                    gw.db,
                    lambda row, reason=reason: (
                        row.kind == "drug_library.refused" and row.detail_dict.get("reason") == reason
                    ),
                )
        for n in gateways:
            assert _retained_library(subscribe, broker, n)["version"] == "2026.12"  # unchanged

        # 4. the next good release still goes through everywhere
        publish(v2)
        for n in gateways:
            assert _in_force(sub, n, "2027.01")["serial"] == 2

        # 5. the broker hands out the old release again: refused, once per gateway, not a storm;
        #    a gateway killed and restarted keeps the newer release it had and refuses the old one
        publish(v1)
        gw_a = gateways["gw-a"]

        def old_v1_refused(r: dict) -> bool:
            return (
                r.get("event") == "drug library release refused"
                and r.get("reason") == "LibraryNotNewer"
                and r.get("version") == "2026.12"
                and r.get("in_force_version") == "2027.01"
            )

        for gw in gateways.values():
            gw.wait_log(old_v1_refused)
        gw_a.kill()
        since = len(sub.history)
        gw_a.start()
        # restored from its database (not from the broker, which now retains the old release) ...
        assert _in_force(sub, "gw-a", "2027.01", timeout=30, since=since)["serial"] == 2
        gw_a.wait_log(lambda r: r.get("event") == "drug library release in force" and r.get("source") == "restart")
        # ... and the old retained release delivered on connect is refused again, by version
        deadline = time.monotonic() + 20
        while sum(map(old_v1_refused, gw_a.records())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(map(old_v1_refused, gw_a.records())) == 2  # once per process lifetime
        for n in gateways:
            assert _retained_library(subscribe, broker, n)["version"] == "2027.01"
        for n in ("gw-b", "gw-c"):
            assert len(_refusals(gateways[n], "LibraryNotNewer")) == 2  # v0 once, v1 once
    finally:
        for gw in gateways.values():
            if gw.proc is not None:
                gw.stop()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_a_release_dropped_in_the_folder_is_reported_on_the_library_topic_too(
    tmp_path, make_broker, subscribe, pumpgw_cmd, subprocess_env
):
    from tests.gateway.druglib.release_kit import make_key, sign

    broker = make_broker()
    key = make_key(tmp_path / "keys", "pharmacy")
    gw = GatewayProc("gw-d", tmp_path, broker, key.public_file, pumpgw_cmd, subprocess_env)
    drop = tmp_path / "drop"
    drop.mkdir()
    gw.config.write_text(
        gw.config.read_text().replace("[library]\n", f'[library]\nfrom_mqtt = false\nwatch_dir = "{drop}"\n')
    )
    sub = subscribe(broker, [f"{PREFIX}/site1/gw-d/library"])
    gw.start()
    try:
        gw.wait_log(lambda r: r.get("event") == "mqtt.online")
        lib = library("2027.03")
        (drop / "r.json").write_bytes(lib)
        (drop / "r.json.sig").write_bytes(sign(lib, key, 9))
        got = _in_force(sub, "gw-d", "2027.03")
        assert (got["source"], got["serial"], got["signer_key_id"]) == ("watch_dir", 9, key.key_id)
        # from_mqtt = false: the gateway never subscribed to the release topic (broker's own log)
        assert "pumpgw/v1/library/current" not in (tmp_path / "broker0" / "mosquitto.log").read_text()
    finally:
        gw.stop()
