"""`pumpgw fleet --demo` refuses cleanly when PostgreSQL or the broker is away, naming the
address and how to start one; `pumpgw fleet passwd` prints a verifiable argon2id hash."""

from __future__ import annotations

import socket
import subprocess
import tomllib

from fleet.web.auth import verify_password
from fleet.web.settings import WebSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_demo_names_the_unreachable_addresses_without_a_traceback(pumpgw_cmd, subprocess_env):
    pg, mq = _closed_port(), _closed_port()
    r = subprocess.run(
        [
            *pumpgw_cmd,
            "fleet",
            "--demo",
            "--pg",
            f"host=127.0.0.1 port={pg} user=postgres",
            "--broker",
            f"127.0.0.1:{mq}",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert f"PostgreSQL is not reachable at 127.0.0.1:{pg}" in r.stderr and "systemctl start postgresql" in r.stderr
    assert f"MQTT broker is not reachable at 127.0.0.1:{mq}" in r.stderr and "mosquitto" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_fleet_without_command_or_demo_says_what_is_missing(pumpgw_cmd, subprocess_env):
    r = subprocess.run(
        [*pumpgw_cmd, "fleet"], capture_output=True, text=True, env=subprocess_env, timeout=60, check=False
    )
    assert r.returncode == 1 and "FLEET_COMMAND or --demo" in r.stderr and "Traceback" not in r.stderr


def test_passwd_prints_a_users_entry_whose_hash_verifies(pumpgw_cmd, subprocess_env):
    r = subprocess.run(
        [*pumpgw_cmd, "fleet", "passwd", "--stdin", "--user", "anna", "--role", "pharmacy"],
        input="a long secret\n",
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    entry = tomllib.loads(r.stdout)["web"]["users"][0]
    assert entry["name"] == "anna" and entry["role"] == "pharmacy"
    assert verify_password(entry["password_hash"], "a long secret")
    WebSettings.model_validate({"users": [entry]})
    short = subprocess.run(
        [*pumpgw_cmd, "fleet", "passwd", "--stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
        check=False,
    )
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_demo_fills_the_database_and_serves_the_ui_until_sigterm(postgres, broker, pumpgw_cmd, subprocess_env):
    """The newcomer's path end to end, against this test's own PostgreSQL and Mosquitto."""
    import re
    import signal
    import time

    import httpx

    port = _closed_port()
    proc = subprocess.Popen(
        [
            *pumpgw_cmd,
            "fleet",
            "--demo",
            "--pg",
            postgres.dsn(),
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--port",
            str(port),
            "--wards",
            "3",
            "--pumps",
            "4",
            "--days",
            "12",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env,
    )
    try:
        lines = []
        for line in proc.stdout:  # blocks until the demo prints; it prints the URL once serving
            lines.append(line)
            if "The fleet UI:" in line:
                break
        url, password = re.search(r"(http://127\.0\.0\.1:\d+/)\s+user: demo\s+password: (\S+)", "".join(lines)).groups()
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(100):  # uvicorn binds right after the line is printed
                try:
                    form = client.get("/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            r = client.post("/login", data={"username": "demo", "password": password, "csrf_token": token})
            assert r.status_code == 303
            gateways = client.get("/api/gateways").json()["rows"]
            assert len(gateways) == 3 and sum(g["pumps"] for g in gateways) == 12
            assert client.get("/api/swaps").json()["rows"], "the scripted swap reached the database"
            assert client.get("/api/not_seen?days=7").json()["rows"], "the vanished pump is listed"
            uptake = client.get("/api/uptake").json()["rows"]
            assert {r["version"] for r in uptake} == {"L9"}  # the second release, still rolling out
            assert any(r["on_version"] < r["pumps"] for r in uptake)
            assert "pumps_on_current_library" in client.get("/?format=json").json()["numbers"]
            online = [
                g for g in client.get("/api/gateways").json()["rows"] if g["state"] == "online" and not g["stale"]
            ]
            assert len(online) == 3  # heartbeats right after the history
            assert "Region overview" in client.get("/").text
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
