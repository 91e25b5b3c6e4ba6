"""Pump drivers: byte transports and one sub-package per protocol family.

Nothing in this package imports ``gateway``: a driver turns bytes from a pump into a
normalized :class:`drivers.model.PumpSnapshot` and knows nothing about HL7, MQTT or outboxes.
"""
