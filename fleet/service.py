"""``pumpgw fleet run``: migrate, then the collector thread and (optionally) the HTTP API.

One composition root. SIGTERM/SIGINT stop it in order: the HTTP server stops taking requests,
the collector writes and acknowledges the batch in hand, disconnects (its broker session is
kept), and the process exits 0. A SIGKILL loses nothing either: unacknowledged messages are
redelivered to the next run.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from fleet.collector import Collector
from fleet.config import FleetSettings
from fleet.db.connect import connect
from fleet.db.migrations import migrate

log = logging.getLogger("pumpgw.fleet")


def run_service(settings: FleetSettings, *, http: bool = True) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with connect(settings.database.dsn) as conn:
        applied = migrate(conn)
    if applied:
        log.info("schema migrations applied: %s", applied)
    stop = threading.Event()
    _install_handlers(stop)
    collector = Collector(settings)
    thread = threading.Thread(target=collector.run, args=(stop,), name="fleet-collector")
    thread.start()
    try:
        if http:
            _serve_http(settings, stop)
        else:
            stop.wait()
    finally:
        stop.set()
        thread.join()
    st = collector.stats
    log.info(
        "stopped: %d messages written in %d batches, %d rejected; time parsing %.1f s, writing %.1f s, "
        "acknowledging %.1f s",
        st.written,
        st.batches,
        st.rejected,
        st.parse_s,
        st.write_s,
        st.ack_s,
    )
    return 0


def _install_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop``. uvicorn captures them while serving and re-raises them
    after its graceful shutdown, which lands here too: the collector then flushes and exits."""

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _serve_http(settings: FleetSettings, stop: threading.Event) -> None:
    import uvicorn

    from fleet.http.app import build_app

    if settings.web is not None:  # issue 22: UI + API behind its login, on the UI's listener
        from fleet.web.mount import serve_fleet_app

        serve_fleet_app(settings, settings.web)
        return
    app = build_app(settings, settings.database.dsn)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.http.host, port=settings.http.port, log_level="warning", lifespan="off")
    )
    server.run()  # returns on SIGTERM/SIGINT (uvicorn's own handlers)
