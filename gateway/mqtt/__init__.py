"""MQTT: live state, availability, events and alarms for dashboards (docs/mqtt.md).

MQTT is for live views, not the record of truth: the HL7/MLLP path never depends on it.
"""

from gateway.mqtt.errors import (
    MqttAuthError,
    MqttConnectError,
    MqttConnectionLost,
    MqttError,
    MqttPublishError,
    MqttSetupError,
    MqttTlsError,
)
from gateway.mqtt.publisher import MqttLanes, MqttPublisher, PublisherStats
from gateway.mqtt.topics import Topics

__all__ = [
    "MqttAuthError",
    "MqttConnectError",
    "MqttConnectionLost",
    "MqttError",
    "MqttLanes",
    "MqttPublishError",
    "MqttPublisher",
    "MqttSetupError",
    "MqttTlsError",
    "PublisherStats",
    "Topics",
]
