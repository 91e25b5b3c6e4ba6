"""The byte side every pure pump-side line shares: decode requests, keep every bad frame.

A front-end (:class:`~simulators.alaris.frontend.AlarisLine`,
:class:`~simulators.ne1000.frontend.Ne1000Line`) feeds the host's bytes to its protocol's
decoder (the driver's own, so the two cannot drift). Each decoded request goes to
:meth:`DecodingLine._request`; each frame error is kept in ``frame_errors`` (tests and
scenarios inspect them) and may be answered by :meth:`DecodingLine._bad_frame`. Together
with ``pending`` and ``discard_partial`` this is the byte half of the
:class:`~simulators.pty_server.Line` protocol the pty server serves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from drivers.errors import FrameError
from drivers.framing_common import StreamDecoder
from simulators.faults import Outgoing

RequestT = TypeVar("RequestT")


class DecodingLine(ABC, Generic[RequestT]):
    """Requests decoded by ``decoder``; replies are :class:`Outgoing` items."""

    def __init__(self, decoder: StreamDecoder[RequestT]) -> None:
        self._decoder = decoder
        self.frame_errors: list[FrameError] = []

    @property
    def pending(self) -> int:
        """Bytes of a partial request held by the decoder."""
        return self._decoder.pending

    def discard_partial(self) -> None:
        """Inter-byte timeout: the partial request is discarded, and kept as a frame error."""
        self.frame_errors.extend(self._decoder.flush())

    def receive(self, data: bytes) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                self.frame_errors.append(item)
                out.extend(self._bad_frame(item))
            else:
                out.extend(self._request(item))
        return out

    @abstractmethod
    def _request(self, request: RequestT) -> list[Outgoing]:
        """The replies to one valid request."""

    def _bad_frame(self, error: FrameError) -> list[Outgoing]:
        """The replies to an invalid frame: none unless the protocol defines one."""
        return []
