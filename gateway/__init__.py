"""pumpgw gateway: everything from a pump snapshot to the wire (HL7/MLLP, MQTT)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pumpgw")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
