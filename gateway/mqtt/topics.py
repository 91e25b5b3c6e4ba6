"""The MQTT topic tree (docs/mqtt.md).

::

    {prefix}/{site}/{gateway}/status                    retained, Last Will "offline"
    {prefix}/{site}/{gateway}/inventory                 retained
    {prefix}/{site}/{gateway}/alerts                    gateway technical alerts, QoS 1, not retained
    {prefix}/{site}/{gateway}/rebirth                   consumers publish here (not retained)
    {prefix}/rebirth                                    ... or here, for every gateway
    {prefix}/library/current                            signed drug-library release, retained (pharmacy)
    {prefix}/{site}/{gateway}/library                   release in force on this gateway, retained
    {prefix}/{site}/{gateway}/pumps/{pump}/availability retained
    {prefix}/{site}/{gateway}/pumps/{pump}/state        retained
    {prefix}/{site}/{gateway}/pumps/{pump}/events       QoS 1, not retained
    {prefix}/{site}/{gateway}/pumps/{pump}/alarms       QoS 1, not retained

Levels are configuration identifiers (site, gateway id, pump id), never patient data
(design.md §2 inv. 7). A level must not contain the MQTT wildcards ``+``/``#`` or a ``/``
(MQTT 3.1.1 §4.7.1), so a pump id cannot escape its subtree.
"""

from __future__ import annotations

from dataclasses import dataclass

_FORBIDDEN = frozenset("+#/\x00")


def _level(name: str, what: str) -> str:
    if not name or not _FORBIDDEN.isdisjoint(name):
        raise ValueError(f"{what} {name!r} cannot be an MQTT topic level (empty, or contains + # / or NUL)")
    return name


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of one gateway."""

    prefix: str
    site: str
    gateway: str

    def __post_init__(self) -> None:
        if not self.prefix or any(ch in "+#\x00" for ch in self.prefix) or self.prefix.endswith("/"):
            raise ValueError(f"topic prefix {self.prefix!r} must be non-empty, without + # NUL or a trailing /")
        _level(self.site, "site")
        _level(self.gateway, "gateway id")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.gateway}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def inventory(self) -> str:
        return f"{self.base}/inventory"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    @property
    def rebirth(self) -> str:
        return f"{self.base}/rebirth"

    @property
    def rebirth_all(self) -> str:
        return f"{self.prefix}/rebirth"

    @property
    def library(self) -> str:
        return f"{self.base}/library"

    @property
    def library_current(self) -> str:
        return f"{self.prefix}/library/current"

    def pump(self, pump_id: str, leaf: str) -> str:
        if leaf not in ("availability", "state", "events", "alarms"):
            raise ValueError(f"unknown pump topic leaf {leaf!r}")
        return f"{self.base}/pumps/{_level(pump_id, 'pump id')}/{leaf}"

    def availability(self, pump_id: str) -> str:
        return self.pump(pump_id, "availability")

    def state(self, pump_id: str) -> str:
        return self.pump(pump_id, "state")

    def events(self, pump_id: str) -> str:
        return self.pump(pump_id, "events")

    def alarms(self, pump_id: str) -> str:
        return self.pump(pump_id, "alarms")
