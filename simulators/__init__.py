"""Simulators of the devices and systems around pumpgw (pumps, EHR receiver)."""
