"""The BCC-style read-only driver for one rack slot (reference §6).

Many drivers share one :class:`~drivers.line.Line` (one TCP connection per rack) and its one
:class:`~drivers.bbraun_bcc.session.RackSession`; see there why one ``MEM:GET`` per cycle
feeds every slot. ``address`` is the rack position as ``pillar * 100 + slot``
(:func:`rack_address`, the registry's :data:`~drivers.registry.SPACECOM` rule), because the
driver contract carries a single integer.

What a slot's snapshot can say (§6.5, §8): the rate (``INRT``, taken as mL/h -- the
implementation's data model names the rate in mL/h; the unit of ``INRT`` itself is not
stated) and the model/software identifiers (``GNNEW``, ``GNMODEL``). Delivery state, VTBI,
volume, drug, alarms and serial number travel in parameters whose meaning is **unknown**
(§6.5 "parameter U"), so they are not interpreted: the channel state is ``unknown`` and the
uninterpreted parameters are kept in ``raw_status`` for diagnosis. A removed pump (``GNERR
39``), a wrong address (``GNERR 811``) or a slot missing from a complete response is
:class:`~drivers.bbraun_bcc.codec.PumpNotInSlot` -- silence for that pump only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from drivers.base import PumpDriver
from drivers.bbraun_bcc import codec
from drivers.bbraun_bcc.session import ALLOWED_REQUESTS, INITIAL_BED_ID, RackImage, encode_request, rack_session
from drivers.errors import ReplyTimeout
from drivers.line import Line
from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from drivers.registry import SPACECOM
from drivers.transport.link import Link
from drivers.values import NumberSpec, ValueRejected, ValueWarnings, parse_number

MANUFACTURER = "B. Braun"
INRT = NumberSpec("INRT", Decimal(0), Decimal("9999.999"), places=3, int_digits=4)
"""Rate in mL/h: unsigned, captured values have 0-2 decimals (docs/pump-values.md)."""
_warnings = ValueWarnings(logging.getLogger("pumpgw.drivers.bbraun_bcc"))


def rack_address(pillar: int, slot: int) -> int:
    """The driver's integer address for a rack position: ``pillar * 100 + slot``."""
    return SPACECOM.encode(pillar, slot)


class BccDriver(PumpDriver):
    protocol = "bbraun-bcc"
    ALLOWED_COMMANDS = ALLOWED_REQUESTS

    def __init__(
        self, line: Line | Link, *, pump_id: str, address: int | None = None, request_timeout_s: float = 1.0
    ) -> None:
        super().__init__(line, pump_id=pump_id, address=address, request_timeout_s=request_timeout_s)
        if address is None:
            raise ValueError(f"pump {pump_id}: a bbraun-bcc pump needs its rack position (pillar * 100 + slot)")
        self.pillar, self.slot = divmod(address, 100)
        rack_address(self.pillar, self.slot)  # validates
        self.session = rack_session(self.line)
        self._consumed = 0

    async def identify(self) -> PumpIdentity:
        # Any image younger than the sharing window will do, and reading it here does not
        # count as consuming it: identify + poll in one cycle still cost one MEM:GET.
        image = await self.session.rack_image(pump_id=self.pump_id, consumed=0, timeout_s=self.request_timeout_s)
        records = self._records_of(image)
        version = await self.session.rack_version(pump_id=self.pump_id, timeout_s=self.request_timeout_s)
        return self._identity(records, version)

    async def poll(self) -> PumpSnapshot:
        records = await self._slot_records()
        values = {r.parameter: r.value for r in records}
        rate = None
        if values.get("INRT") is not None:
            try:
                rate = Quantity(parse_number(values["INRT"] or "", INRT), "mL/h")
            except ValueRejected as exc:  # that field unknown, the rest of the slot still counts
                _warnings.rejected(self.pump_id, exc)
        channel = ChannelSnapshot(channel_id="1", state=ChannelState.UNKNOWN, rate=rate)
        return PumpSnapshot(
            pump_id=self.pump_id,
            identity=self._identity(records, self.session.version),
            channels=(channel,),
            received_at=datetime.now(UTC),
            raw_status=" ".join(f"{r.parameter}={r.value}" for r in records),
        )

    def _identity(self, records: list[codec.Record], version: str | None) -> PumpIdentity:
        values = {r.parameter: r.value for r in records}
        model = values.get("GNNEW") or "Space"
        firmware = values.get("GNMODEL")
        return PumpIdentity(
            manufacturer=MANUFACTURER,
            model=model,
            serial_number=None,  # no parameter is known to carry it (§6.5, §8)
            firmware=firmware if firmware else (f"BCC {version}" if version else None),
        )

    async def _slot_records(self) -> list[codec.Record]:
        image = await self.session.rack_image(
            pump_id=self.pump_id, consumed=self._consumed, timeout_s=self.request_timeout_s
        )
        self._consumed = image.generation
        return self._records_of(image)

    def _records_of(self, image: RackImage) -> list[codec.Record]:
        position = (self.pillar, self.slot)
        code = image.gnerr.get(position)
        if code is not None:
            raise codec.PumpNotInSlot(self.pump_id, self.link.name, self.pillar, self.slot, code)
        records = image.slots.get(position)
        if records:
            return records
        if image.errors:  # our frame may be the damaged one: say what went wrong
            raise image.errors[0].located(pump_id=self.pump_id, link=self.link.name)
        if not image.complete:
            raise ReplyTimeout(self.pump_id, self.link.name, codec.GET, self.request_timeout_s)
        raise codec.PumpNotInSlot(self.pump_id, self.link.name, self.pillar, self.slot, None)

    def _encode_request(self, command: str) -> bytes:
        return encode_request(self.session.bed_id or INITIAL_BED_ID, command, stuffing=self.session.stuffing)
