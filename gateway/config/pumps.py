"""One pump (or one rack slot) the gateway polls, read-only.

Which link a protocol needs and how its pumps are addressed come from the driver registry
(:mod:`drivers.registry`), the one table of protocol facts.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from drivers.registry import ProtocolName, RackPosition, driver_spec
from gateway.config.links import Link, TcpLink
from gateway.config.strict import ID_PATTERN, StrictModel, rule_error


class PumpConfig(StrictModel):
    """One pump (or one rack slot) the gateway polls, read-only."""

    id: str = Field(pattern=ID_PATTERN, description="Stable pump id used in topics, logs and HL7 (e.g. 'bed07-a').")
    protocol: ProtocolName = Field(description="Protocol family of the pump.")
    link: Link = Field(description="How the pump is reached: a serial link or a TCP (rack) link.")
    location: str = Field(default="", description="Bed/location label, e.g. 'ICU-3 bed 7' (PV1-3).")
    care_area: str = Field(default="", description="Drug-library care area the pump is used in.")
    poll_interval_s: float = Field(default=5.0, ge=0.2, le=3600, description="Seconds between two status polls.")
    request_timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="Seconds to wait for the pump's reply to one request."
    )
    comm_lost_after_s: float = Field(
        default=30.0, gt=0, description="Silence after which the pump is reported communication-lost."
    )
    identify_interval_s: float = Field(
        default=300.0,
        ge=5,
        le=86400,
        description="Seconds between two identity reads (serial number, firmware): a swap or a firmware update "
        "that the status replies do not reveal is found within this time. Identity is always read at connect.",
    )
    asset_tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The hospital's inventory number (asset tag) of the pump in this slot, from the region's "
        "register; sent as MDC_ATTR_ID_SOFT, shown by `pumpgw inventory`. A pump with another serial "
        "number in this slot is then reported as a swap that contradicts the register (ERROR).",
    )

    @field_validator("asset_tag")
    @classmethod
    def _printable_tag(cls, value: str | None) -> str | None:
        if value is not None and (value != value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
            raise ValueError("an asset tag is printable text without control characters or surrounding blanks")
        return value

    @model_validator(mode="after")
    def _link_fits_protocol(self) -> PumpConfig:
        """The link kind and addressing the protocol's :class:`~drivers.registry.DriverSpec` names."""
        spec = driver_spec(self.protocol)
        if self.link.type != spec.link:
            raise rule_error(
                "link",
                f'protocol "{self.protocol}" needs a {spec.link} link ({spec.wiring}); got type = "{self.link.type}"',
            )
        rule = spec.address
        if isinstance(rule, RackPosition) and isinstance(self.link, TcpLink):
            if self.link.pillar is None or self.link.slot is None:
                raise rule_error(
                    "link", f"a {self.protocol} pump is addressed by its rack position: link needs pillar and slot"
                )
            problem = rule.problem(self.link.pillar, self.link.slot)
            if problem is not None:
                raise rule_error("link", problem)
        return self
