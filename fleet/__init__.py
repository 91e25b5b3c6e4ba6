"""pumpgw fleet: the region's central view of every ward gateway (MQTT -> PostgreSQL -> reports).

Never imports ``gateway`` (the ward daemon): the contract between them is the published MQTT
topic tree and its versioned JSON Schemas (fleet/ingest/contract.py keeps the fleet's copy).
"""


class FleetError(Exception):
    """Base of every error the fleet raises on purpose; its message names what and where."""


class FleetConfigError(FleetError):
    """fleet.toml is unreadable or invalid."""
