"""The drop folder: signed files dropped in are put in force, newest last; others refused."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from gateway.druglib.dropdir import DropFolder
from gateway.druglib.releases import AUDIT_APPLIED, AUDIT_REFUSED
from gateway.druglib.trust import TrustList
from tests.gateway.druglib.release_kit import library, make_key, sign
from tests.gateway.druglib.test_releases import Gateway

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _drop(folder, name, lib: bytes, sig: bytes) -> None:
    (folder / f"{name}.json").write_bytes(lib)
    (folder / f"{name}.json.sig").write_bytes(sig)


async def test_releases_dropped_together_end_with_the_newest_in_force(tmp_path):
    key = make_key(tmp_path / "k", "pharmacy")
    folder = tmp_path / "library"
    folder.mkdir()
    gw = Gateway(tmp_path / "o.sqlite", TrustList.from_config([key.trusted()]))
    v1, v2 = library("2026.11"), library("2026.12")
    # alphabetical order is the wrong order on purpose: the serial decides
    _drop(folder, "a-newest", v2, sign(v2, key, 2, signed_at=NOW))
    _drop(folder, "b-older", v1, sign(v1, key, 1, signed_at=NOW))
    (folder / "unsigned.json").write_bytes(v1)  # no .sig: not a release, ignored
    drop = DropFolder(folder, gw.applier, max_bytes=1 << 21)
    assert await drop.scan() == 2
    assert gw.version == "2026.12" and gw.audit.kinds() == [AUDIT_APPLIED, AUDIT_APPLIED]
    assert gw.reported[-1].source == "watch_dir"
    assert await drop.scan() == 0  # unchanged files are not offered again
    gw.state.close()


async def test_an_oversized_dropped_file_is_refused_from_its_size_unread(tmp_path):
    key = make_key(tmp_path / "k", "pharmacy")
    folder = tmp_path / "library"
    folder.mkdir()
    gw = Gateway(tmp_path / "o.sqlite", TrustList.from_config([key.trusted()]))
    big = folder / "big.json"
    with open(big, "wb") as f:
        f.truncate(10 * 1024 * 1024)  # sparse: the size is what matters
    (folder / "big.json.sig").write_bytes(b"{}")
    os.chmod(big, 0)  # unreadable: proves it is never opened (as root, the size check still runs first)
    await DropFolder(folder, gw.applier, max_bytes=1 << 21).scan()
    assert gw.audit.kinds() == [AUDIT_REFUSED] and gw.audit.rows[0][2]["reason"] == "LibraryTooLarge"
    assert gw.version is None
    gw.state.close()
