"""The stream-decoder bookkeeping every framing shares: buffer, stream offset, dropped runs.

Each protocol's decoder (``drivers.alaris.framing``, ``drivers.bbraun_bcc.framing``,
``drivers.ne1000.framing``) decodes one item at the head of the buffer in ``_next``; this
base feeds bytes in, loops until ``_next`` wants more, and keeps every skipped byte in a
:class:`~drivers.errors.FrameError` with its stream offset, so nothing is cleared silently
(style: "count and report what was dropped").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from drivers.errors import FrameError

ItemT = TypeVar("ItemT")


class StreamDecoder(ABC, Generic[ItemT]):
    """Buffer and stream-offset bookkeeping; subclasses decode ``ItemT`` in :meth:`_next`.

    ``FLUSH_REASON`` and ``FLUSH_KIND`` say how :meth:`flush` reports an abandoned partial
    frame in this protocol's terms.
    """

    FLUSH_REASON: ClassVar[str] = "incomplete frame discarded"
    FLUSH_KIND: ClassVar[type[FrameError]] = FrameError

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ItemT | FrameError]:
        self._buf += data
        out: list[ItemT | FrameError] = []
        while self._buf:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def flush(self) -> list[FrameError]:
        """Give up on a partial frame (after an idle gap or on disconnect)."""
        if not self._buf:
            return []
        return [self._drop(len(self._buf), self.FLUSH_REASON, self.FLUSH_KIND)]

    @abstractmethod
    def _next(self) -> ItemT | FrameError | None:
        """Decode one item at the head of the non-empty buffer, or None to wait for more."""

    def _consume(self, count: int) -> bytes:
        chunk = bytes(self._buf[:count])
        del self._buf[:count]
        self._offset += count
        return chunk

    def _drop(self, count: int, reason: str, kind: type[FrameError] = FrameError) -> FrameError:
        """Consume ``count`` bytes as a reported error of type ``kind``."""
        offset = self._offset
        return kind(reason, offset=offset, data=self._consume(count))
