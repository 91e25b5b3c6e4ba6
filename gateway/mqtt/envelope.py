"""How an MQTT message is stored in the outbox: the topic, a NUL byte, then the payload.

MQTT forbids NUL in topic names (MQTT 3.1.1 §1.5.3, MQTT 5 §1.5.4), so the split is
unambiguous and the outbox, which stores bytes only, needs no MQTT-specific column.
"""

from __future__ import annotations

from gateway.errors import BadInput


class EnvelopeError(BadInput, ValueError):
    """A queued payload is not a topic-NUL-payload envelope (corrupt row, wrong lane)."""

    def __init__(self, message_id: int | None, problem: str) -> None:
        self.message_id = message_id
        self.problem = problem
        super().__init__(f"queued MQTT message {message_id}: {problem}")


def encode_envelope(topic: str, payload: bytes) -> bytes:
    if not topic or "\x00" in topic or "+" in topic or "#" in topic:
        raise EnvelopeError(None, f"topic {topic!r} is not a valid MQTT topic name")
    return topic.encode("utf-8") + b"\x00" + payload


def decode_envelope(data: bytes, message_id: int | None = None) -> tuple[str, bytes]:
    topic, sep, payload = data.partition(b"\x00")
    if not sep or not topic:
        raise EnvelopeError(message_id, "no topic before a NUL separator")
    try:
        return topic.decode("utf-8"), payload
    except UnicodeDecodeError as exc:
        raise EnvelopeError(message_id, f"topic is not UTF-8 at byte {exc.start}") from exc
