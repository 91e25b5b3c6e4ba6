"""Real Mosquitto for the traceability end-to-end tests (the MQTT tests' own fixtures)."""

from tests.gateway.mqtt.conftest import broker, make_broker, subscribe  # noqa: F401
