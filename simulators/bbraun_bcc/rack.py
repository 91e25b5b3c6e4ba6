"""A SpaceCom-style rack as pure logic: request bytes in, response frames out (reference §6).

It reuses the driver's framing and record codec (``drivers.bbraun_bcc``). Behaviour:

* ``ADMIN:ALIVE`` -> one ``GNACK,0`` record under the rack's bed ID; ``ADMIN:VERSION`` -> a
  record whose parameter is the version (``V3.30``, as the reference simulator) [D6];
* ``MEM:GET`` -> one frame per pump, the rack-level records in the first, every frame but
  the last ending with ETB ([D6], [D7]); ``GNNEW`` first in every pump's records (as in the
  captured frames); a pump removed since the last ``MEM:GET`` is reported once with
  ``GNERR,39``; an empty rack answers ``GNERR,11``;
* ``MEM:GETSLOT#<p><s>`` -> that pump's records, or ``GNERR,811`` at the requested address
  for an empty or invalid slot (§6.6);
* anything else -> ``GNERR,68`` ("wrong syntax") -- our choice, switchable off with
  ``answer_unknown=False`` because whether a real SpaceCom answers is unknown (§6.6);
* a client ACK (0x06) is counted; bad frames are ignored. Empty slots start empty (not
  "removed" -- the reference simulator's quirk is not copied).

Per-pump faults act on that pump's frame of a ``MEM:GET``: silent omits it, corrupt breaks
its checksum, garbage precedes it, a delay holds it (and the frames behind it).

The rack-level parameters and the per-pump parameters beyond ``GNNEW``/``GNMODEL``/``INRT``
are emitted only to exercise parsers; their mapping to model values is this simulator's
assumption, as their meaning is unknown (§6.5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.bbraun_bcc import codec
from drivers.bbraun_bcc.framing import ACK, Frame, FrameDecoder, LinkControl, encode_frame
from drivers.errors import FrameError
from simulators.faults import Faults, Outgoing, faulty_reply
from simulators.pump_model import SimulatedPump


@dataclass
class RackSlot:
    pump: SimulatedPump
    faults: Faults = field(default_factory=Faults)


def _corrupt(wire: bytes) -> bytes:
    damaged = bytearray(wire)
    damaged[-2] = ord("0") + (damaged[-2] - ord("0") + 1) % 10  # last checksum digit
    return bytes(damaged)


class BccRack:
    """Pillars x slots of simulated pumps behind one SpaceCom."""

    def __init__(
        self,
        *,
        pillars: int = 3,
        slots: int = 24,
        bed_id: str = "ComSystem",
        version: str = "V3.30",
        stuffing: bool = False,
        answer_unknown: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not (1 <= pillars <= 3 and 1 <= slots <= 24):
            raise ValueError(f"a SpaceCom has 1-3 pillars of 1-24 slots, got {pillars} x {slots}")
        self.pillars, self.slots_per_pillar = pillars, slots
        self.bed_id, self.version, self.stuffing = bed_id, version, stuffing
        self.answer_unknown = answer_unknown
        self._clock = clock
        self._t0 = clock()
        self._wall0 = wall_clock()
        self.clock_offset_s = 0.0
        self.slots: dict[tuple[int, int], RackSlot] = {}
        self._removed: set[tuple[int, int]] = set()
        self.acks_received = 0
        self.requests: list[str] = []
        self.frame_errors: list[FrameError] = []

    # -- rack contents -------------------------------------------------------------------

    def insert(self, pillar: int, slot: int, pump: SimulatedPump, faults: Faults | None = None) -> RackSlot:
        if not (1 <= pillar <= self.pillars and 1 <= slot <= self.slots_per_pillar):
            raise ValueError(f"no position {pillar}/{slot} in a {self.pillars} x {self.slots_per_pillar} rack")
        self._removed.discard((pillar, slot))
        self.slots[(pillar, slot)] = entry = RackSlot(pump, faults or Faults())
        return entry

    def remove(self, pillar: int, slot: int) -> None:
        if self.slots.pop((pillar, slot), None) is not None:
            self._removed.add((pillar, slot))

    def seconds(self, pump: SimulatedPump | None = None) -> int:
        """Relative seconds as the rack reports them; a pump's clock jumps and drift show."""
        base = self._clock() - self._t0 + self.clock_offset_s
        if pump is not None:
            base = (pump.device_time() - self._wall0).total_seconds() + self.clock_offset_s
        return max(0, int(base))

    # -- one connection's byte stream ----------------------------------------------------

    def connection(self) -> RackConnection:
        return RackConnection(self)

    def answer(self, request: str) -> list[Outgoing]:
        self.requests.append(request)
        if request == codec.ALIVE:
            return self._frames([[codec.Record(self.seconds(), 0, 0, "GNACK", "0")]])
        if request == codec.VERSION:
            return self._frames([[codec.Record(self.seconds(), 0, 0, self.version)]])
        if request == codec.GET:
            return self._mem_get()
        if request.startswith("MEM:GETSLOT#"):
            return self._get_slot(request[len("MEM:GETSLOT#") :])
        if self.answer_unknown:
            return self._frames([[codec.Record(self.seconds(), 0, 0, "GNERR", "68")]])
        return []

    def _mem_get(self) -> list[Outgoing]:
        rack_records = [codec.Record(self.seconds(), 0, 0, "FMNOR", "1")]
        groups: list[tuple[list[codec.Record], Faults]] = []
        for position in sorted(self._removed):
            rack_records.append(codec.Record(self.seconds(), *position, "GNERR", "39"))
        self._removed.clear()
        for position in sorted(self.slots):
            entry = self.slots[position]
            groups.append((self.pump_records(position, entry.pump), entry.faults))
        if not groups:
            rack_records.append(codec.Record(self.seconds(), 0, 0, "GNERR", "11"))
        live: list[tuple[list[codec.Record], Faults | None]] = [(r, f) for r, f in groups if not f.silent]
        if live:
            live[0] = (rack_records + live[0][0], live[0][1])
        else:
            live = [(rack_records, None)]
        out: list[Outgoing] = []
        for index, (records, faults) in enumerate(live):
            wire = encode_frame(
                self.bed_id, codec.format_records(records), final=index == len(live) - 1, stuffing=self.stuffing
            )
            out.extend(faulty_reply(faults, wire, _corrupt) if faults else [Outgoing(wire)])
        return out

    def _get_slot(self, where: str) -> list[Outgoing]:
        pillar = int(where[0]) if where[:1].isdigit() else -1
        slot = codec.SLOT_CHARS.index(where[1]) if len(where) == 2 and where[1] in codec.SLOT_CHARS else -1
        entry = self.slots.get((pillar, slot))
        if len(where) != 2 or entry is None:
            address = (max(0, min(pillar, 3)), max(0, slot))
            return self._frames([[codec.Record(self.seconds(), *address, "GNERR", "811")]])
        wire = encode_frame(
            self.bed_id, codec.format_records(self.pump_records((pillar, slot), entry.pump)), stuffing=self.stuffing
        )
        return faulty_reply(entry.faults, wire, _corrupt)

    def _frames(self, groups: list[list[codec.Record]]) -> list[Outgoing]:
        return [
            Outgoing(
                encode_frame(
                    self.bed_id, codec.format_records(records), final=i == len(groups) - 1, stuffing=self.stuffing
                )
            )
            for i, records in enumerate(groups)
        ]

    def pump_records(self, position: tuple[int, int], pump: SimulatedPump) -> list[codec.Record]:
        t = self.seconds(pump)
        program = pump.program
        values = [
            ("GNNEW", pump.identity.model),
            ("GNMODEL", pump.identity.firmware),
            ("INRT", f"{pump.current_rate_ml_h:.2f}"),
            # Uninterpreted by the driver (meaning unknown, §6.5); simulator's guesses:
            ("INSOL", (program.drug if program and program.drug else None)),
            ("INVI", f"{pump.volume_infused_ml:.1f}"),
            ("INVOLACT", f"{program.vtbi_ml:.2f}" if program and program.vtbi_ml is not None else None),
            ("INSERNUM", pump.identity.serial_number),
            ("DSSTATUS", pump.state.value.upper()),
        ]
        return [codec.Record(t, *position, name, value) for name, value in values]


class RackConnection:
    """One client connection: its own decoder, the shared rack behind it."""

    def __init__(self, rack: BccRack) -> None:
        self.rack = rack
        self._decoder = FrameDecoder(stuffing=rack.stuffing)

    def receive(self, data: bytes) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in self._decoder.feed(data):
            if isinstance(item, LinkControl):
                self.rack.acks_received += item.byte == ACK
            elif isinstance(item, Frame):
                out.extend(self.rack.answer(item.data.decode("latin-1")))
            else:
                self.rack.frame_errors.append(item)
        return out
