"""The status page of a running `pumpgw demo` in real headless Chromium, plus /healthz,
/metrics and `pumpgw status` against the same daemon. Screenshots are kept under
test-artifacts/ (or $PUMPGW_TEST_ARTIFACTS) for a human to look at."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def artifacts() -> Path:
    path = Path(os.environ.get("PUMPGW_TEST_ARTIFACTS", REPO / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def demo(tmp_path, pumpgw_cmd, subprocess_env):
    port = free_port()
    proc = subprocess.Popen(
        [
            *pumpgw_cmd,
            "demo",
            "--state-dir",
            str(tmp_path / "state"),
            "--health-port",
            str(port),
            "--status-every",
            "30",
        ],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(base + "/healthz")[0] == 200, 40, "the demo to be ready")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_status_page_shows_every_pump_lane_and_the_library_and_refreshes_itself(demo):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo + "/")
            assert "pumpgw gw-demo" in page.title()
            assert "Ready" in page.inner_text("#health")
            pumps = page.inner_text("#pumps")
            for bed in ("bed01", "bed02", "bed03"):
                assert bed in pumps
            assert "infusing" in pumps and "up" in pumps
            assert "drug_not_in_library" in pumps  # the verdict column
            lanes = page.inner_text("#lanes")
            assert "ehr" in lanes and "ehr.alarms" in lanes
            assert "example-2024.1" in page.inner_text("#library")
            page.screenshot(path=str(artifacts() / "status-page-demo.png"), full_page=True)
            stamp = page.inner_text(".muted")
            # <meta http-equiv=refresh>: the browser reloads the page by itself
            page.wait_for_function("s => document.querySelector('.muted').innerText !== s", arg=stamp, timeout=20_000)
            # no patient data and no drug names on the page (the simulated pumps carry drugs)
            html = page.content()
            assert "dopamine" not in html.lower() and "heparin" not in html.lower() and "PID|" not in html
        finally:
            browser.close()


def test_healthz_metrics_and_status_command_agree_with_the_page(demo, pumpgw_cmd, subprocess_env):
    status, body = get(demo + "/healthz")
    assert status == 200 and json.loads(body) == {"live": True, "ready": True, "reasons": []}
    wait_for(lambda: b'pumpgw_hl7_acks_total{code="AA",lane="ehr"}' in get(demo + "/metrics")[1], 30, "an ACK")
    metrics = get(demo + "/metrics")[1].decode()
    for name in (
        "pumpgw_polls_total",
        "pumpgw_hl7_ack_latency_seconds_bucket",
        "pumpgw_outbox_messages",
        "pumpgw_outbox_oldest_pending_age_seconds",
        "pumpgw_events_total",
        "pumpgw_drug_library_info",
        "pumpgw_link_up",
        "pumpgw_gateway_info",
        "pumpgw_event_loop_lag_seconds_count",
    ):
        assert name in metrics, name
    assert 'pumpgw_drug_library_info{status="in force",version="example-2024.1"} 1.0' in metrics
    result = subprocess.run(
        [*pumpgw_cmd, "status", "--url", demo, "--json"], env=subprocess_env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert [p["id"] for p in snapshot["pumps"]] == ["bed01", "bed02", "bed03"]
    assert snapshot["health"]["ready"] is True
    text = subprocess.run(
        [*pumpgw_cmd, "status", "--url", demo], env=subprocess_env, capture_output=True, text=True, timeout=30
    )
    assert text.returncode == 0 and "health        READY" in text.stdout and "bed02" in text.stdout


def test_status_command_without_a_daemon_exits_1_with_a_hint(pumpgw_cmd, subprocess_env):
    result = subprocess.run(
        [*pumpgw_cmd, "status", "--url", f"http://127.0.0.1:{free_port()}/"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot reach the daemon" in result.stderr and "Traceback" not in result.stderr
