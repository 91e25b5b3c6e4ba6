"""systemd's notification protocol (sd_notify), without a dependency.

A datagram with ``KEY=VALUE`` lines to the AF_UNIX socket named in ``$NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace). Outside systemd the variable is unset and
every call is a no-op, so the daemon runs the same under a terminal, in tests and in the demo.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + address[1:]) if address.startswith("@") else address
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @staticmethod
    def watchdog_interval_s() -> float | None:
        """Half of systemd's ``WatchdogSec`` (``$WATCHDOG_USEC``), as sd_watchdog_enabled advises."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2_000_000

    def notify(self, **fields: str | int) -> bool:
        """Send ``READY=1``-style fields; returns False (and never raises) when it cannot."""
        if self._sock is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def extend_timeout(self, seconds: float, status: str = "") -> bool:
        """Ask systemd for ``seconds`` more before READY (``EXTEND_TIMEOUT_USEC``, systemd
        >= 236): for start-up work whose length depends on the data, so a slow but healthy
        start is not killed by ``TimeoutStartSec`` and restarted into the same work."""
        fields: dict[str, str | int] = {"EXTEND_TIMEOUT_USEC": int(seconds * 1_000_000)}
        if status:
            fields["STATUS"] = status
        return self.notify(**fields)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
