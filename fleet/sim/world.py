"""A simulated region: N gateways x M pumps and a script of what happens, as MQTT messages.

Pure and deterministic for a seed: :meth:`Region.birth` gives a gateway's retained messages
(status, inventory, library, availability, state), :meth:`Region.step` the messages of one time
step. Times are virtual (``start + k * step``) unless ``realtime`` is set, so a demo can fill two
weeks in seconds while the bench measures real end-to-end lag.

Scripted happenings (fractions of ``rounds``):

* 20 %: the pharmacy releases library ``L8`` (``{prefix}/library/current``); gateways apply it
  at once, pumps pick it up over the following rounds (uptake), each with ``pump_library_changed``;
* 35 %: one pump of gateway 0 is swapped for another device (``device_swapped``);
* 50 %: every pump of model NE-1000 gets firmware 3.10 (``firmware_changed``);
* 60 %: an alarm storm on the last gateway (occlusions on every pump);
* 30 %: the last pump of gateway 1 disappears (comm lost, never seen again).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.sim import payloads as P

MODELS = (("New Era", "NE-1000", "3.9"), ("Fresenius", "Agilia SP", "2.2"), ("B. Braun", "Space", "1.7"))
DRUGS = ("heparin", "insulin", "noradrenaline", "morphine", "propofol", None)  # None: basic infusion
VERDICTS = (
    "within_limits",
    "within_limits",
    "within_limits",
    "above_soft_max",
    "below_soft_min",
    "drug_not_in_library",
)


@dataclass
class SimPump:
    pump: str
    manufacturer: str
    model: str
    serial: str
    firmware: str
    library: str = "L7"
    running: bool = False
    drug: str | None = None
    gone: bool = False
    seq: int = 0

    def ident(self) -> dict[str, Any]:
        return P.identity(self.manufacturer, self.model, self.serial, self.firmware, self.library)


@dataclass
class SimGatewayState:
    site: str
    gateway: str
    ward: str
    session: str
    pumps: list[SimPump]
    library: str = "L7"
    alarm_seq: int = 0
    open_alarms: dict[str, tuple[str, int]] = field(default_factory=dict)  # pump -> (instance, seq)


class Region:
    def __init__(
        self,
        gateways: int,
        pumps: int,
        *,
        rounds: int = 20,
        seed: int = 1,
        prefix: str = "pumpgw/v1",
        start: datetime | None = None,
        step: timedelta = timedelta(hours=1),
        realtime: bool = False,
        site: str = "region",
        activity: float = 0.3,
    ) -> None:
        self.prefix = prefix
        self.rounds = max(1, rounds)
        self.step_size = step
        self.realtime = realtime
        self.activity = activity
        self.rng = random.Random(seed)
        self.start = start or (datetime.now(UTC) - (timedelta(0) if realtime else step * self.rounds))
        self.gateways = [
            SimGatewayState(
                site,
                f"gw{g:03d}",
                f"ward-{g:03d}",
                f"s{seed}-{g}",
                [
                    SimPump(
                        f"p{p:02d}",
                        *MODELS[(g + p) % len(MODELS)][:2],
                        f"SN{seed}{g:03d}{p:03d}",
                        MODELS[(g + p) % len(MODELS)][2],
                    )
                    for p in range(pumps)
                ],
            )
            for g in range(gateways)
        ]
        self.released = False

    def time(self, k: int) -> datetime:
        return datetime.now(UTC) if self.realtime else self.start + self.step_size * k

    def birth(self, g: int, k: int = 0) -> list[P.Message]:
        gw = self.gateways[g]
        at = self.time(k)
        out = [
            P.status(
                self.prefix,
                gw.site,
                gw.gateway,
                state="online",
                session=gw.session,
                since=at,
                ward=gw.ward,
                heartbeat_at=at,
            ),
            P.gateway_library(self.prefix, gw.site, gw.gateway, version=gw.library, applied_at=at),
            self._inventory(gw, at),
        ]
        for p in gw.pumps:
            if not p.gone:
                out.append(P.availability(self.prefix, gw.site, gw.gateway, p.pump, value="online", since=at))
                out.append(self._state(gw, p, at))
        return out

    def will(self, g: int, at: datetime | None = None) -> P.Message:
        gw = self.gateways[g]
        return P.status(
            self.prefix,
            gw.site,
            gw.gateway,
            state="offline",
            session=gw.session,
            since=at or self.time(0),
            ward=gw.ward,
        )

    def release(self, k: int) -> P.Message:
        return P.release(self.prefix, version="L8", released_at=self.time(k))

    def _inventory(self, gw: SimGatewayState, at: datetime) -> P.Message:
        pumps = [
            {
                "pump": p.pump,
                **p.ident(),
                "last_seen": at.isoformat(),
                "asset_tag": f"A-{p.serial}",
                "bed": f"bed-{i + 1:02d}",
                "udi": f"(01)0{p.serial}",
            }
            for i, p in enumerate(gw.pumps)
            if not p.gone
        ]
        return P.inventory(
            self.prefix, gw.site, gw.gateway, ward=gw.ward, at=at, central_library=gw.library, pumps=pumps
        )

    def _state(self, gw: SimGatewayState, p: SimPump, at: datetime) -> P.Message:
        verdict = self.rng.choice(VERDICTS) if p.running and p.drug else None
        return P.state(
            self.prefix,
            gw.site,
            gw.gateway,
            p.pump,
            at=at,
            ident=p.ident(),
            running="infusing" if p.running else "idle",
            drug=p.drug,
            verdict=verdict,
            library=gw.library,
        )

    def _event(self, gw: SimGatewayState, p: SimPump, kind: str, at: datetime, **kw: Any) -> P.Message:
        p.seq += 1
        return P.event(self.prefix, gw.site, gw.gateway, p.pump, kind=kind, at=at, seq=p.seq, **kw)

    def step(self, k: int) -> list[tuple[int, P.Message]]:
        """Messages of time step ``k`` as (gateway index, message)."""
        out: list[tuple[int, P.Message]] = []
        at = self.time(k)
        frac = k / self.rounds
        for g, gw in enumerate(self.gateways):

            def emit(m: P.Message, g: int = g) -> None:
                out.append((g, m))

            if self.released and gw.library != "L8":
                gw.library = "L8"
                emit(P.gateway_library(self.prefix, gw.site, gw.gateway, version="L8", applied_at=at))
            for i, p in enumerate(gw.pumps):
                if p.gone:
                    continue
                if g == 1 % max(1, len(self.gateways)) and i == len(gw.pumps) - 1 and frac >= 0.3:
                    p.gone = True
                    emit(self._event(gw, p, "comm_lost", at))
                    emit(P.availability(self.prefix, gw.site, gw.gateway, p.pump, value="comm-lost", since=at))
                    continue
                changed = False
                if self.released and p.library != "L8" and self.rng.random() < 0.35:
                    previous = p.ident()
                    p.library = "L8"
                    emit(self._event(gw, p, "pump_library_changed", at, previous=previous))
                    changed = True
                if g == 0 and i == 0 and k == int(self.rounds * 0.35):
                    previous = p.ident()
                    p.serial = p.serial + "X"
                    emit(
                        self._event(
                            gw,
                            p,
                            "device_swapped",
                            at,
                            previous=previous,
                            detail={
                                "previous_serial": previous["serial_number"],
                                "serial": p.serial,
                                "model": p.model,
                                "previous_model": previous["model"],
                                "asset_tag": f"A-{previous['serial_number']}",
                            },
                        )
                    )
                    changed = True
                if p.model == "NE-1000" and p.firmware != "3.10" and k == int(self.rounds * 0.5):
                    previous = p.ident()
                    p.firmware = "3.10"
                    emit(self._event(gw, p, "firmware_changed", at, previous=previous))
                    changed = True
                if self.rng.random() < self.activity:
                    p.running = not p.running
                    if p.running:
                        p.drug = self.rng.choice(DRUGS)
                        emit(self._event(gw, p, "delivery_start", at, drug=p.drug))
                    else:
                        emit(self._event(gw, p, "delivery_stop", at, drug=p.drug))
                    changed = True
                storm = g == len(self.gateways) - 1 and k == int(self.rounds * 0.6)
                out.extend((g, m) for m in self._alarms(gw, p, at, storm))
                if changed:
                    emit(self._state(gw, p, at))
            if k % 6 == 0:
                emit(
                    P.status(
                        self.prefix,
                        gw.site,
                        gw.gateway,
                        state="online",
                        session=gw.session,
                        since=self.time(0),
                        ward=gw.ward,
                        heartbeat_at=at,
                    )
                )
                emit(self._inventory(gw, at))
        if not self.released and frac >= 0.2:
            self.released = True
            out.append((0, self.release(k)))
        return out

    def _alarms(self, gw: SimGatewayState, p: SimPump, at: datetime, storm: bool) -> list[P.Message]:
        out = []
        if p.pump in gw.open_alarms and (storm or self.rng.random() < 0.5):
            out.append(self._alarm_end(gw, p, at))
        if storm:  # five short occlusion alarms per pump within the step
            for n in range(5):
                out.append(self._alarm_onset(gw, p, at + timedelta(seconds=10 * n), "occlusion"))
                out.append(self._alarm_end(gw, p, at + timedelta(seconds=10 * n + 5)))
        elif p.pump not in gw.open_alarms and self.rng.random() < self.activity / 6:
            out.append(self._alarm_onset(gw, p, at, self.rng.choice(("occlusion", "air_in_line", "vtbi_complete"))))
        return out

    def _alarm_onset(self, gw: SimGatewayState, p: SimPump, at: datetime, condition: str) -> P.Message:
        gw.alarm_seq += 1
        instance = f"{gw.gateway}-{p.pump}-{gw.alarm_seq}"
        p.seq += 1
        gw.open_alarms[p.pump] = (instance, p.seq)
        return P.alarm(
            self.prefix,
            gw.site,
            gw.gateway,
            p.pump,
            phase="onset",
            at=at,
            seq=p.seq,
            instance=instance,
            condition=condition,
            priority="high" if condition == "occlusion" else "medium",
        )

    def _alarm_end(self, gw: SimGatewayState, p: SimPump, at: datetime) -> P.Message:
        instance, _ = gw.open_alarms.pop(p.pump)
        p.seq += 1
        return P.alarm(self.prefix, gw.site, gw.gateway, p.pump, phase="end", at=at, seq=p.seq, instance=instance)
