"""Exceptions of the MQTT layer.

Chosen by what the caller does next: :class:`MqttAuthError` and :class:`MqttSetupError`
need a person (fix the credentials, the CA file) so the reconnect loop waits its longest
backoff; :class:`MqttConnectError` and :class:`MqttConnectionLost` are transient and retried
with the normal jittered backoff. paho-mqtt's return codes and reason codes are turned into
these at one boundary (:mod:`gateway.mqtt.connection`); nothing above it sees a paho code.
"""

from __future__ import annotations

from gateway.errors import BadInput, PumpgwError, RetryLater


class MqttError(PumpgwError):
    """Base of every MQTT error; carries the broker address it concerns."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(f"MQTT broker {host}:{port}: {message}")


class MqttConnectError(MqttError, RetryLater):
    """The TCP/TLS connection or the CONNACK failed for a reason worth retrying soon."""

    def __init__(self, message: str, *, host: str, port: int, reason: str = "") -> None:
        self.reason = reason
        super().__init__(message, host=host, port=port)


class MqttAuthError(MqttConnectError):
    """The broker refused the credentials (CONNACK 'Bad user name or password' / 'Not authorized').

    Retrying soon cannot help; the reconnect loop logs it at ERROR and waits its longest backoff.
    """

    def __init__(self, *, host: str, port: int, username: str, reason: str) -> None:
        self.username = username
        super().__init__(
            f"authentication refused for user {username!r}: {reason} "
            "(check mqtt.username, mqtt.password_file and the broker's password_file/ACL)",
            host=host,
            port=port,
            reason=reason,
        )


class MqttSetupError(MqttError, BadInput):
    """Local setup is unusable: password file unreadable, TLS files missing, certificate rejected."""


class MqttTlsError(MqttSetupError):
    """TLS handshake or certificate verification failed. There is never a plaintext fallback."""


class MqttConnectionLost(MqttError, RetryLater):
    """An established session ended; in-flight publishes are failed and resent after reconnect."""

    def __init__(self, message: str, *, host: str, port: int, reason: str = "") -> None:
        self.reason = reason
        super().__init__(message, host=host, port=port)


class MqttPublishError(MqttError, RetryLater):
    """The broker rejected one publish (MQTT 5 PUBACK reason code >= 0x80, e.g. ACL denial)."""

    def __init__(self, *, host: str, port: int, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"publish to {topic!r} refused: {reason}", host=host, port=port)
