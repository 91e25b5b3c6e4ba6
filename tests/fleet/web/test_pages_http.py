"""The UI over HTTP (httpx against a real uvicorn and PostgreSQL): every page renders for a
logged-in viewer, exports answer, and access rules hold. The browser tests do the same in
Chromium; these are the quick ones."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import USERS

PAGES = ["/", "/ward?name=ICU", "/uptake", "/firmware", "/swaps", "/not-seen", "/alarms", "/ders"]


def login(client: httpx.Client, user: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = client.post("/login", data={"username": user, "password": USERS[user][1], "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text


@pytest.fixture
def viewer(web):
    with httpx.Client(base_url=web.url) as client:
        login(client, "vera")
        yield client


def test_every_page_renders_for_a_viewer_with_its_exports(viewer):
    for path in PAGES:
        r = viewer.get(path)
        assert r.status_code == 200, (path, r.text[:2000])
        assert "<script" not in r.text.lower(), (path, r.text[r.text.lower().find("<script") - 200 :][:400])
        assert not re.findall(r"(?:src|href)=\"(?:https?:)?//", r.text), path  # nothing loaded from elsewhere
        for href in re.findall(r'class="(?:json|csv)" href="([^"]+)"', r.text):
            e = viewer.get(href.replace("&amp;", "&"))
            assert e.status_code == 200, (path, href, e.text[:300])


def test_pages_need_a_login(web):
    with httpx.Client(base_url=web.url) as client:
        r = client.get("/uptake")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert client.get("/api/uptake").status_code == 401
        assert client.get("/api/health").status_code == 200


def test_fleet_toml_refuses_a_ui_beyond_loopback_without_tls(tmp_path):
    from fleet import FleetConfigError
    from fleet.config import load_settings

    f = tmp_path / "fleet.toml"
    f.write_text('[web]\nhost = "0.0.0.0"\n')
    with pytest.raises(FleetConfigError, match=r"fleet.toml: web.*beyond loopback.*tls_cert"):
        load_settings(f)


def test_over_tls_the_session_cookie_is_secure(fleet_db, web_settings, tmp_path):
    import ssl

    import trustme
    from psycopg_pool import ConnectionPool

    from fleet.web.mount import build_fleet_app
    from tests.fleet.web.conftest import Server
    from tests.ports import free_port

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    settings = web_settings.model_copy(update={"tls_cert": tmp_path / "cert.pem", "tls_key": tmp_path / "key.pem"})
    pool = ConnectionPool(fleet_db, min_size=1, max_size=2, open=True)
    port = free_port()
    server = Server(build_fleet_app(None, settings, pool), port)
    server.server.config.ssl_certfile = str(tmp_path / "cert.pem")
    server.server.config.ssl_keyfile = str(tmp_path / "key.pem")
    try:
        with server:
            context = ssl.create_default_context()
            ca.configure_trust(context)
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context) as client:
                form = client.get("/login")
                assert "secure" in form.headers["set-cookie"].lower()
                token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
                r = client.post("/login", data={"username": "vera", "password": USERS["vera"][1], "csrf_token": token})
                cookie = r.headers["set-cookie"].lower()
                assert r.status_code == 303 and "fleet_session=" in cookie
                assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        pool.close()


def test_identity_header_counts_only_from_a_trusted_proxy(fleet_db, web_settings):
    from psycopg_pool import ConnectionPool

    from fleet.web.mount import build_fleet_app
    from fleet.web.settings import ProxyMode
    from tests.fleet.web.conftest import Server
    from tests.ports import free_port

    proxied = web_settings.model_copy(update={"proxy": ProxyMode(trusted_proxies=["127.0.0.1"])})
    untrusted = web_settings.model_copy(update={"proxy": ProxyMode(trusted_proxies=["10.9.9.9"])})
    for settings, expect in ((proxied, 200), (untrusted, 403)):
        pool = ConnectionPool(fleet_db, min_size=1, max_size=2, open=True)
        try:
            with Server(build_fleet_app(None, settings, pool), free_port()) as server:
                r = httpx.get(server.url + "/", headers={"X-Remote-User": "ada"})
                assert r.status_code == expect, r.text[:200]
                if expect == 200:
                    assert "ada (admin)" in r.text
                    assert httpx.get(server.url + "/", headers={"X-Remote-User": "mallory"}).status_code == 303
        finally:
            pool.close()


def test_field_strings_are_escaped_in_pages_and_links(viewer, web):
    import psycopg

    evil = '<script>alert("x")</script>&ward'
    with psycopg.connect(web.dsn) as conn:
        conn.execute("UPDATE gateways SET ward = %s WHERE ward = 'MED'", (evil,))
    page = viewer.get("/").text
    assert "<script>" not in page and "&lt;script&gt;" in page
    link = re.search(r'href="(/ward\?name=[^"]*script[^"]*)"', page).group(1)
    ward = viewer.get(link.replace("&amp;", "&"))
    assert ward.status_code == 200 and "<script>" not in ward.text
    assert "Ward &lt;script&gt;" in ward.text


def test_pumps_by_state_add_up_to_all_pumps(viewer):
    data = viewer.get("/?format=json").json()
    states = {r["state"]: r["pumps"] for r in data["tables"]["pumps_by_state"]}
    assert sum(states.values()) == data["numbers"]["pumps"]
    assert states["gateway offline"] == 4 and "infusing" in states


def test_unknown_ward_and_pump_are_404_pages(viewer):
    assert viewer.get("/ward?name=nowhere").status_code == 404
    assert viewer.get("/pumps/region/nogw/nopump").status_code == 404
    assert viewer.get("/firmware?format=csv&table=nope").status_code == 404
