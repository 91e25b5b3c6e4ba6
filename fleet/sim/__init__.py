"""An MQTT-level simulator of ward gateways for the fleet's tests, bench and demo.

It publishes what real gateways publish (schema-valid per config/schema/mqtt-*.schema.json),
for N gateways x M pumps, with scripted happenings: a library release and its uptake, a device
swap, a firmware update, an alarm storm, a pump that disappears. Pure payload builders live in
``payloads.py``, the scenario in ``world.py``, the MQTT side in ``publisher.py``.
"""
