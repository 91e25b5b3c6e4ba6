"""Alaris GH/CC/Asena-style pumps (reference §3): ``!CMD^args|CRC\\r`` framing, read-only."""
