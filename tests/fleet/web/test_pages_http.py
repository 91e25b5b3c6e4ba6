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
        assert "<script" not in r.text.lower(), (path, r.text[r.text.lower().find("<script") - 200:][:400])
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
