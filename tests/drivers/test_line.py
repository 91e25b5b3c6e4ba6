"""Drivers share a wire only through the Line their owner gives them; nothing is global."""

from __future__ import annotations

import ast
import os
import pty
import tty
from pathlib import Path

import drivers
from drivers.bbraun_bcc.client import BccDriver, rack_address
from drivers.line import Line
from drivers.ne1000.client import Ne1000Driver
from drivers.transport import open_serial, open_tcp
from simulators.bbraun_bcc import BccRack, BccRackServer


async def test_drivers_on_one_line_share_its_lock_and_stream_and_other_lines_do_not():
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = await open_serial(os.ttyname(slave), name="line")
    try:
        line = Line(link)
        a, b = (Ne1000Driver(line, pump_id=f"p{n}", address=n) for n in (0, 1))
        alone = Ne1000Driver(link, pump_id="alone", address=2)  # a bare link: a line of its own
        assert a.line is b.line and a._exchange_lock is b._exchange_lock and a._stream is b._stream
        assert alone.line is not line and alone._exchange_lock is not line.lock
    finally:
        await link.close()
        os.close(master)
        os.close(slave)


async def test_slots_of_one_rack_line_share_one_session_and_a_new_line_starts_a_new_one():
    async with BccRackServer(BccRack()) as server:
        links = [await open_tcp("127.0.0.1", server.port, name=f"rack-{i}") for i in range(2)]
        try:
            first, second = Line(links[0]), Line(links[1])
            slots = [BccDriver(first, pump_id=f"s{s}", address=rack_address(1, s)) for s in (1, 2)]
            again = BccDriver(second, pump_id="s1", address=rack_address(1, 1))
            assert slots[0].session is slots[1].session
            assert again.session is not slots[0].session and again.session.line is second
        finally:
            for link in links:
                await link.close()


def test_no_driver_module_keeps_per_link_state_at_module_level():
    """The documented rule: no global state. A module-level mapping keyed by link is one."""
    offenders = []
    for path in Path(drivers.__file__).parent.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Call) and "WeakKeyDictionary" in ast.unparse(value.func):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
