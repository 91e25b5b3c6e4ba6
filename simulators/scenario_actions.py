"""What each timeline action of a scenario does to a running simulated pump.

The actions are the verbs of ``[[pumps.at]]`` (see :mod:`simulators.scenario`): alarms, pump
operation, injected faults, link loss, identity and firmware changes, rack removal. They act on
a :class:`~simulators.scenario_pumps.PumpHandle` (the pump model, its faults and its link);
when and in which order they run is the :class:`~simulators.scenario_runner.ScenarioRunner`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from drivers.ne1000 import codec as ne_codec
from simulators.pump_model import PumpModelError
from simulators.scenario import Action, decimal
from simulators.scenario_pumps import PumpHandle


async def apply_action(h: PumpHandle, a: Action, *, reconnect_later: Callable[[PumpHandle, float], None]) -> None:
    """Do ``a`` to ``h`` now; :class:`PumpModelError` when the pump model refuses it."""
    pump = h.pump
    match a.action:
        case "alarm":
            pump.clear_alarm(a.kind or "")  # a repeated alarm is a new onset
            pump.set_alarm(a.kind or "")
        case "clear_alarm":
            pump.clear_alarm(a.kind or "")
        case "start":
            pump.start()
        case "stop":
            pump.stop()
        case "pause":
            pump.pause()
        case "resume":
            pump.resume()
        case "titrate":
            pump.titrate(rate_ml_h=decimal(a.rate_ml_h))
        case "set_vtbi":
            pump.set_vtbi(None if not a.vtbi_ml else decimal(a.vtbi_ml))
        case "fault":
            for name in ("corrupt_checksum", "silent", "reply_delay_s"):
                if getattr(a, name) is not None:
                    setattr(h.faults, name, getattr(a, name))
            if a.garbage_before_reply is not None:
                h.faults.garbage_before_reply = a.garbage_before_reply.encode("latin-1")
        case "clear_faults":
            h.faults.clear()
        case "disconnect":
            await disconnect(h)
            if a.duration_s:
                reconnect_later(h, a.duration_s)
        case "reconnect":
            await reconnect(h)
        case "swap_identity":
            swap_identity(h, a.serial or "", a.firmware)
        case "firmware":
            set_firmware(h, a.firmware or "")
            if h.spec.protocol == "ne1000" and h.pty is not None:
                h.pump.clear_alarm("pump_reset")
                h.pump.set_alarm("pump_reset")  # a firmware update reboots the pump: A?R, identity re-read
        case "library":
            h.pump.identity = replace(h.pump.identity, library_version=a.library_version)
        case "identity_unreadable":
            h.pump.identity = replace(h.pump.identity, readable=False)
        case "identity_readable":
            h.pump.identity = replace(h.pump.identity, readable=True)
        case "clock_jump":
            pump.jump_clock(a.seconds or 0.0)
        case "remove":
            if h.rack is None:
                raise PumpModelError("remove/insert are rack actions (bbraun-bcc)")
            h.rack.remove(h.spec.pillar or 0, h.spec.slot or 0)
        case "insert":
            if h.rack is None:
                raise PumpModelError("remove/insert are rack actions (bbraun-bcc)")
            h.rack.insert(h.spec.pillar or 0, h.spec.slot or 0, pump, h.faults)


async def disconnect(h: PumpHandle) -> None:
    if h.pty is not None:
        h.pty.disconnect()
    elif h.rack_server is not None:
        await h.rack_server.suspend()  # the rack's link: every pump on it goes


async def reconnect(h: PumpHandle) -> None:
    if h.pty is not None:
        h.pty.reconnect()
    elif h.rack_server is not None:
        await h.rack_server.resume()


def swap_identity(h: PumpHandle, serial: str, firmware: str | None) -> None:
    """Another pump on the same port: new serial, fresh power-up."""
    identity = replace(h.pump.identity, serial_number=serial, firmware=firmware or h.pump.identity.firmware)
    h.pump.identity = identity
    if h.spec.protocol == "ne1000" and h.pty is not None:
        h.pump.clear_alarm("pump_reset")
        h.pump.set_alarm("pump_reset")  # the swapped pump powers up: A?R, identity re-read
        if firmware:
            set_firmware(h, firmware)
    if h.rack is not None:  # out of the slot and back: GNERR 39, then GNNEW (§6.6)
        h.rack.remove(h.spec.pillar or 0, h.spec.slot or 0)
        h.rack.insert(h.spec.pillar or 0, h.spec.slot or 0, h.pump, h.faults)


def set_firmware(h: PumpHandle, firmware: str) -> None:
    h.pump.identity = replace(h.pump.identity, firmware=firmware)
    if h.spec.protocol == "ne1000" and h.pty is not None:
        major, _, minor = firmware.partition(".")
        state = h.pty.line.pumps[0]  # type: ignore[attr-defined]
        state.version = ne_codec.Version(state.version.model_number, int(major or 0), minor or "0")
