"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright;
nothing downloads a browser): pages render from the seeded database, their numbers equal the
JSON API's, region -> ward -> pump navigation works, login, roles and CSRF are enforced, and
failed logins are rate-limited and audited. Screenshots of each page are kept as artifacts
in build/test-artifacts/fleet-web/ (PUMPGW_SCREENSHOTS=docs/img/fleet also writes the docs' images)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .conftest import USERS

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts() -> Iterator[Path]:
    # A stable place (pytest's tmp dirs rotate): CI keeps build/test-artifacts/ after the run.
    out = Path(__file__).resolve().parents[3] / "build" / "test-artifacts" / "fleet-web"
    out.mkdir(parents=True, exist_ok=True)
    yield out
    print(f"\nscreenshots of the fleet UI: {out}")


def shot(page, artifacts: Path, name: str) -> None:
    """Full page into the artifacts; with PUMPGW_SCREENSHOTS, the first screen as a small JPEG
    there too (how docs/img/fleet/ is made)."""
    page.screenshot(path=artifacts / f"{name}.png", full_page=True)
    target = os.environ.get("PUMPGW_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=Path(target) / f"{name}.jpg", type="jpeg", quality=70)


def login(page, base: str, user: str, password: str | None = None) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or USERS[user][1])
    follow(page, "button[type=submit]")  # the answer page (region or login form) has loaded


def follow(page, selector: str) -> None:
    """Click a link or submit button and wait until the page it leads to has loaded."""
    with page.expect_navigation():
        page.click(selector)


def numbers(page) -> dict[str, str]:
    return {el.get_attribute("data-num"): el.inner_text().strip() for el in page.query_selector_all("dd[data-num]")}


def api(page, base: str, path: str) -> dict:
    r = page.request.get(base + path)
    assert r.status == 200, (path, r.text()[:300])
    return r.json()


def rows_in(page, table: str) -> int:
    return len(page.query_selector_all(f"table[data-table={table}] tbody tr:not(:has(td.note))"))


def test_each_page_renders_and_its_numbers_match_the_json_api(web, browser, artifacts):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    base = web.url
    login(page, base, "vera")

    page.goto(base + "/")
    shot(page, artifacts, "region")
    n = numbers(page)
    gateways = api(page, base, "/api/gateways")["rows"]
    inventory = api(page, base, "/api/inventory")["rows"]
    assert int(n["pumps"]) == sum(g["pumps"] for g in gateways) == len(inventory) == 24
    online = [g for g in gateways if g["state"] == "online" and not g["stale"]]
    assert int(n["gateways_online"]) == len(online) == 5
    assert int(n["gateways_offline"]) == len(gateways) - len(online) == 1
    assert n["current_library"] == "2026.12"
    uptake = api(page, base, "/api/uptake")["rows"]
    assert int(n["pumps_on_current_library"]) == sum(r["on_version"] for r in uptake)
    assert int(n["open_alerts"]) == 2 == rows_in(page, "open_alerts")
    assert rows_in(page, "gateways") == len(gateways)
    assert page.locator("svg[role=img]").count() >= 1

    page.goto(base + "/uptake")
    shot(page, artifacts, "uptake")
    assert rows_in(page, "uptake") == len(uptake) == 3
    markers = page.locator("svg line.marker")
    assert markers.count() == 2  # 80 % and 100 %
    assert page.locator("svg polyline.series").count() == 3  # one curve per ward
    stragglers = int(numbers(page)["stragglers"])
    assert stragglers == sum(r["pumps"] - r["on_version"] for r in uptake) == rows_in(page, "stragglers")
    for cell, row in zip(
        page.query_selector_all("table[data-table=uptake] td[data-col=on_version]"), uptake, strict=True
    ):
        assert int(cell.inner_text()) == row["on_version"]

    # The curve ends where the table is: stragglers are never counted as adopted.
    timeline = api(page, base, "/api/uptake_timeline")["rows"]
    for row in uptake:
        last = [p for p in timeline if p["ward"] == row["ward"]][-1]
        assert last["on_version"] == row["on_version"], row["ward"]
        assert (row["hours_to_100"] is None) == (row["on_version"] < row["pumps"]), row["ward"]

    page.goto(base + "/firmware")
    shot(page, artifacts, "firmware")
    firmware = api(page, base, "/api/firmware")["rows"]
    assert int(numbers(page)["versions"]) == len(firmware) == rows_in(page, "firmware")
    assert page.locator("svg rect.bar").count() == len(firmware)

    page.goto(base + "/swaps")
    shot(page, artifacts, "swaps")
    swaps = api(page, base, "/api/swaps?days=90")["rows"]
    n = numbers(page)
    assert int(n["swapped"]) == sum(1 for s in swaps if s["kind"] != "device_returned") >= 1
    assert int(n["returned"]) == sum(1 for s in swaps if s["kind"] == "device_returned") >= 1

    page.goto(base + "/not-seen")
    shot(page, artifacts, "not-seen")
    gone = api(page, base, "/api/not_seen?days=7")["rows"]
    assert int(numbers(page)["pumps"]) == len(gone) == rows_in(page, "not_seen") >= 1
    page.fill("input[name=days]", "30")
    follow(page, "form[action='/not-seen'] button")
    assert int(numbers(page)["pumps"]) == len(api(page, base, "/api/not_seen?days=30")["rows"])

    page.goto(base + "/alarms")
    shot(page, artifacts, "alarms")
    conditions = api(page, base, "/api/alarm_conditions?days=7")["rows"]
    assert int(numbers(page)["onsets"]) == sum(c["onsets"] for c in conditions) > 0
    shown = {
        (
            c.query_selector("td[data-col=ward]").inner_text(),
            c.query_selector("td[data-col=condition]").inner_text(),
        ): int(c.query_selector("td[data-col=onsets]").inner_text())
        for c in page.query_selector_all("table[data-table=alarm_conditions] tbody tr")
    }
    assert shown == {(c["ward"], c["condition"]): c["onsets"] for c in conditions}
    load = api(page, base, "/api/alarm_load?days=7")["rows"]
    assert int(numbers(page)["pumps_alarming"]) == len(load)
    top = page.query_selector("table[data-table=alarm_load] td[data-col=onsets]").inner_text()
    assert int(top) == max(r["onsets"] for r in load)
    assert page.locator("svg rect.cell").count() == 3 * 24  # wards x hours

    page.goto(base + "/ders")
    shot(page, artifacts, "ders")
    use = api(page, base, "/api/ders_use?days=30")["rows"]
    assert int(numbers(page)["starts"]) == sum(r["library_starts"] + r["basic_starts"] for r in use) > 0
    verdicts = api(page, base, "/api/limit_verdicts?days=30")["rows"]
    cells = page.query_selector_all("table[data-table=limit_verdicts] td.num")
    assert sum(int(c.inner_text()) for c in cells) == sum(v["programs"] for v in verdicts) > 0
    hard = page.query_selector_all("table[data-table=limit_verdicts] td[data-col=hard_limit]")
    assert sum(int(c.inner_text()) for c in hard) == sum(
        v["programs"] for v in verdicts if v["verdict"] in ("above_hard_max", "below_hard_min")
    )

    # Every export link on every page answers (JSON parses, CSV has a header row).
    for path in ("/", "/uptake", "/firmware", "/swaps", "/not-seen", "/alarms", "/ders", "/ward?name=ICU"):
        page.goto(base + path)
        for link in page.query_selector_all("a.json, a.csv"):
            r = page.request.get(base + link.get_attribute("href"))
            assert r.status == 200, (path, link.get_attribute("href"))
            if "csv" in (link.get_attribute("class") or ""):
                assert "," in r.text().splitlines()[0]
            else:
                r.json()
    ctx.close()


def test_navigation_region_to_ward_to_pump(web, browser, artifacts):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    login(page, web.url, "vera")
    page.goto(web.url + "/")
    follow(page, "table[data-table=wards] a:text-is('ICU')")
    assert page.locator("h1").inner_text() == "Ward ICU"
    shot(page, artifacts, "ward")
    icu = api(page, web.url, "/api/inventory?ward=ICU")["rows"]
    assert int(numbers(page)["pumps"]) == len(icu) == rows_in(page, "inventory")
    follow(page, "table[data-table=inventory] td[data-col=pump] a >> nth=0")
    first = icu[0]
    assert page.locator("h1").inner_text() == f"Pump {first['pump']} on {first['gateway']}"
    assert page.locator("td[data-num=serial_number]").inner_text() == first["serial_number"]
    assert rows_in(page, "identity") >= 2  # the swap: another device was seen under this pump
    assert rows_in(page, "alarms") > 0
    shot(page, artifacts, "pump")
    follow(page, "a:text-is('Ward ICU')")
    assert page.locator("h1").inner_text() == "Ward ICU"
    ctx.close()


def test_roles_decide_who_acknowledges_alerts_and_reads_the_audit(web, browser):
    base = web.url
    viewer = browser.new_context().new_page()
    login(viewer, base, "vera")
    assert viewer.locator("table[data-table=open_alerts] button").count() == 0
    assert viewer.request.get(base + "/admin/audit").status == 403
    csrf = viewer.locator("header input[name=csrf_token]").get_attribute("value")
    assert viewer.request.post(base + "/alerts/1/ack", form={"csrf_token": csrf}).status == 403

    pharmacist = browser.new_context().new_page()
    login(pharmacist, base, "paul")
    assert int(numbers(pharmacist)["open_alerts"]) == 2
    follow(pharmacist, "table[data-table=open_alerts] button >> nth=0")
    assert int(numbers(pharmacist)["open_alerts"]) == 1
    assert pharmacist.request.get(base + "/admin/audit").status == 403

    admin = browser.new_context().new_page()
    login(admin, base, "ada")
    admin.goto(base + "/admin/audit")
    text = admin.locator("table[data-table=audit]").inner_text()
    assert "alert_acknowledged" in text and "paul" in text
    assert "Hash chain intact" in admin.content()


def test_a_post_without_the_sessions_csrf_token_is_refused(web, browser):
    base = web.url
    a = browser.new_context().new_page()
    login(a, base, "paul")
    b = browser.new_context().new_page()
    login(b, base, "paul")
    others = b.locator("header input[name=csrf_token]").get_attribute("value")
    assert a.request.post(base + "/alerts/1/ack", form={}).status == 403
    assert a.request.post(base + "/alerts/1/ack", form={"csrf_token": others}).status == 403
    assert a.request.post(base + "/logout", form={"csrf_token": "forged"}).status == 403
    mine = a.locator("header input[name=csrf_token]").get_attribute("value")
    assert a.request.post(base + "/alerts/1/ack", form={"csrf_token": mine}, max_redirects=0).status == 303
    # Login form: a POST without the pre-session cookie's token is refused too.
    fresh = browser.new_context()
    r = fresh.request.post(base + "/login", form={"username": "paul", "password": USERS["paul"][1]})
    assert r.status == 403
    # The cookies are HttpOnly and SameSite=Strict.
    cookie = next(c for c in a.context.cookies() if c["name"] == "fleet_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_failed_logins_are_rate_limited_and_audited(web, browser):
    page = browser.new_context().new_page()
    for _ in range(3):
        login(page, web.url, "vera", "wrong")
        assert "Wrong user name or password" in page.content()
    login(page, web.url, "vera")  # right password, but locked out now
    assert "Too many failed logins" in page.content()
    assert page.url.startswith(web.url + "/login")
    with psycopg.connect(web.dsn) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM web_audit WHERE username = 'vera' ORDER BY id")]
    assert kinds == ["login_failed"] * 3 + ["login_locked_out"]
