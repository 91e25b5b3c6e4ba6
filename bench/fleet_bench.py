"""Fleet service throughput, lag, memory and report times (issue 21, item 6).

Starts its own Mosquitto and PostgreSQL (temp dirs, loopback) and the fleet service as a real
subprocess (``python -m fleet run --no-http``), then measures in the same run:

1. **Typical and 10x burst load** from ``--gateways`` x ``--pumps`` simulated gateways (MQTT
   level, one paho client per gateway): messages/s published and ingested, end-to-end lag of
   events and alarms (``received_at - occurred_at``) p50/p99, RSS of the service.
2. **Saturated drain**: a backlog queued at the broker while the service is stopped, then
   drained: the service's rows/s against a bare ``executemany`` and a bare ``COPY`` of the same
   event rows into the same table, as ratios (goal >= 0.3x).
3. **Reports at region scale**: ``--report-pumps`` pumps and a year of events/alarms/verdicts
   generated in SQL; the time of every report (goal < 1 s each).

Figures are from this machine and this run only; nothing is asserted.
Run: .venv/bin/python bench/fleet_bench.py [--gateways 100 --pumps 30 --seconds 20 --report-pumps 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from fleet.db.connect import connect  # noqa: E402
from fleet.db.migrations import ensure_month, migrate  # noqa: E402
from fleet.reports import REPORTS  # noqa: E402
from fleet.sim.run import RegionRunner  # noqa: E402
from fleet.sim.world import Region  # noqa: E402
from tests.fleet.pg import Postgres, free_port  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
        "max_inflight_messages 1000\nset_tcp_nodelay true\nuser root\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, port


def start_service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "run", "--no-http", "--config", str(config)],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while log.read_text().count("collector: subscribed") < 1 + start_service.count:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise RuntimeError(log.read_text()[-2000:])
        time.sleep(0.05)
    start_service.count += 1  # type: ignore[attr-defined]
    return proc


start_service.count = 0  # type: ignore[attr-defined]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def count_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM alarms)").fetchone()[0]  # type: ignore[index]


def wait_rows(dsn: str, want: int, timeout: float = 300) -> float:
    t0 = time.monotonic()
    while count_rows(dsn) < want:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"only {count_rows(dsn)} of {want} rows after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def load_phase(
    name: str,
    runner: RegionRunner,
    dsn: str,
    service: subprocess.Popen[bytes],
    seconds: float,
    activity: float,
    first_step: int,
) -> int:
    runner.region.activity = activity
    before = count_rows(dsn)
    committed_before = len(runner.committed())
    since = datetime.now(UTC)
    t0 = time.monotonic()
    published = 0
    k = first_step
    rss = 0.0
    while time.monotonic() - t0 < seconds:
        tick = time.monotonic()
        published += runner.step(k)
        k += 1
        rss = max(rss, rss_mb(service.pid))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))  # one simulation step per second
    elapsed = time.monotonic() - t0
    runner.wait_acked(120)
    want = before + len(runner.committed()) - committed_before
    drain = wait_rows(dsn, want)
    with psycopg.connect(dsn) as conn:
        p50, p99 = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)"
            " FROM (SELECT extract(epoch FROM received_at - occurred_at) AS lag FROM events WHERE occurred_at >= %s"
            " UNION ALL SELECT extract(epoch FROM received_at - occurred_at) FROM alarms WHERE occurred_at >= %s) l",
            (since, since),
        ).fetchone()  # type: ignore[misc]
    print(
        f"{name:8} published {published / elapsed:8.0f} msg/s ({published} msgs), events+alarms stored "
        f"{want - before}, drained {drain:.1f} s after the last publish; lag p50 {p50:.3f} s, p99 {p99:.3f} s "
        f"(goal < 2 s); service RSS max {rss:.0f} MB"
    )
    return k


def drain_phase(
    runner: RegionRunner,
    dsn: str,
    config: Path,
    log: Path,
    service: subprocess.Popen[bytes],
    steps: int,
    first_step: int,
) -> subprocess.Popen[bytes]:
    service.send_signal(signal.SIGTERM)
    service.wait(30)
    before = count_rows(dsn)
    committed_before = len(runner.committed())
    runner.region.activity = 0.3
    published = 0
    for k in range(first_step, first_step + steps):
        published += runner.step(k)
    runner.wait_acked(300)
    want = before + len(runner.committed()) - committed_before
    service = start_service(config, log)
    t0 = time.monotonic()
    wait_rows(dsn, want)
    elapsed = time.monotonic() - t0
    rows = want - before
    print(
        f"drain    {published} queued messages ({rows} events+alarms) ingested in {elapsed:.1f} s: "
        f"{published / elapsed:.0f} msg/s, {rows / elapsed:.0f} event/alarm rows/s"
    )
    with psycopg.connect(dsn) as conn:
        sample = conn.execute(
            "SELECT gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug,"
            " care_area, detail, previous_identity FROM events LIMIT %s",
            (rows,),
        ).fetchall()
    baseline(dsn, sample, published / elapsed, rows / elapsed)
    service.send_signal(signal.SIGTERM)
    service.wait(30)
    stopped = [line for line in log.read_text().splitlines() if "stopped:" in line]
    print(f"service  {stopped[-1].split('stopped: ', 1)[-1] if stopped else '(no stop line)'} (whole run)")
    return service


def baseline(dsn: str, sample: list[tuple], fleet_msgs_s: float, fleet_rows_s: float) -> None:
    cols = (
        "gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug, care_area, detail, "
        "previous_identity"
    )
    rows = [
        (
            g + 100_000,
            p,
            f"{m}-{uuid.uuid4().hex[:6]}",
            k,
            t,
            ch,
            cs,
            d,
            ca,
            json.dumps(de),
            json.dumps(pi) if pi else None,
        )
        for g, p, m, k, t, ch, cs, d, ca, de, pi in sample
    ]
    with psycopg.connect(dsn) as conn:
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO events ({cols}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
        conn.commit()
        em = len(rows) / (time.perf_counter() - t0)
        rows2 = [(r[0] + 100_000, *r[1:2], r[2] + "c", *r[3:]) for r in rows]
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
            for r in rows2:
                copy.write_row(r)
        conn.commit()
        cp = len(rows) / (time.perf_counter() - t0)
        conn.execute("DELETE FROM events WHERE gateway_id >= 100000")
        conn.commit()
    print(f"baseline bare executemany {em:.0f} rows/s, bare COPY {cp:.0f} rows/s (same table, same rows)")
    print(
        f"ratio    fleet event/alarm rows/s vs executemany: {fleet_rows_s / em:.2f}x, vs COPY: "
        f"{fleet_rows_s / cp:.2f}x; all messages (incl. state/inventory upserts) vs executemany: "
        f"{fleet_msgs_s / em:.2f}x (goal >= 0.3x)"
    )


EVENT_COLS = (
    "gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug, care_area, detail, "
    "previous_identity"
)
ALARM_COLS = (
    "gateway_id, pump, message_id, phase, alert_instance_id, occurred_at, channel, code, alarm_kind, priority, text"
)


def bare_loops(dsn: str, since_id: tuple[int, int]) -> tuple[float, float, int]:
    """executemany and COPY of the event and alarm rows with id above ``since_id`` (events,
    alarms), re-inserted under other gateway ids into the same tables; rows/s of each."""
    with psycopg.connect(dsn) as conn:
        ev = conn.execute(f"SELECT {EVENT_COLS} FROM events WHERE id > %s ORDER BY id", (since_id[0],)).fetchall()
        al = conn.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id > %s ORDER BY id", (since_id[1],)).fetchall()
        conn.commit()

        def shifted(rows: list[tuple], offset: int, json_cols: tuple[int, ...]) -> list[tuple]:
            return [
                tuple(
                    r[0] + offset if i == 0 else json.dumps(v) if i in json_cols and v is not None else v
                    for i, v in enumerate(r)
                )
                for r in rows
            ]

        rates = []
        for offset in (100_000, 200_000):
            e_rows, a_rows = shifted(ev, offset, (9, 10)), shifted(al, offset, ())
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                if offset == 100_000:
                    cur.executemany(f"INSERT INTO events ({EVENT_COLS}) VALUES ({', '.join(['%s'] * 11)})", e_rows)
                    cur.executemany(f"INSERT INTO alarms ({ALARM_COLS}) VALUES ({', '.join(['%s'] * 11)})", a_rows)
                else:
                    with cur.copy(f"COPY events ({EVENT_COLS}) FROM STDIN") as copy:
                        for r in e_rows:
                            copy.write_row(r)
                    with cur.copy(f"COPY alarms ({ALARM_COLS}) FROM STDIN") as copy:
                        for r in a_rows:
                            copy.write_row(r)
            conn.commit()
            rates.append((len(ev) + len(al)) / (time.perf_counter() - t0))
        conn.execute("DELETE FROM events WHERE gateway_id >= 100000")
        conn.execute("DELETE FROM alarms WHERE gateway_id >= 100000")
        conn.commit()
    return rates[0], rates[1], len(ev) + len(al)


def writer_phase(pg: Postgres, gateways: int, pumps: int, steps: int, batch: int) -> None:
    """The writer alone (no broker, no parsing in the timing): the same simulated messages
    as the drain, already parsed, written in batches of ``batch``; then the bare loops of the same
    event and alarm rows in the same database. Once with only the event and alarm messages,
    once with every message (latest-state upserts, verdicts, inventory too)."""
    from fleet.db.writer import Writer
    from fleet.ingest.parse import parse_message
    from fleet.ingest.records import AlarmMsg, Event

    for label, only_rows in (("events+alarms only", True), ("all messages", False)):
        region = Region(gateways, pumps, rounds=10_000, seed=2, realtime=True, activity=0.3)
        birth = [m for g in range(gateways) for m in region.birth(g)]
        body = [m for k in range(1, steps + 1) for _, m in region.step(k)]
        parse = [parse_message(region.prefix, t, p) for t, p, _ in birth + body]
        recs = [r for r in parse if r is not None]
        head, tail = recs[: len(birth)], recs[len(birth) :]
        if only_rows:
            tail = [r for r in tail if isinstance(r, Event | AlarmMsg)]
        dsn = pg.new_database()
        with connect(dsn) as conn:
            migrate(conn)
            conn.commit()
            writer = Writer()
            for i in range(0, len(head), 1000):
                writer.write(conn, head[i : i + 1000])  # births: gateways, pumps, caches warm
            since = conn.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM events), (SELECT coalesce(max(id), 0) FROM alarms)"
            ).fetchone()
            conn.commit()
            t0 = time.perf_counter()
            for i in range(0, len(tail), batch):
                writer.write(conn, tail[i : i + batch])
            dt = time.perf_counter() - t0
        em, cp, n = bare_loops(dsn, since)  # type: ignore[arg-type]
        print(
            f"writer   {label:18}, batches of {batch}: {len(tail)} msgs ({n} event/alarm rows) in {dt:.2f} s = {n / dt:.0f} rows/s, "
            f"{len(tail) / dt:.0f} msg/s; bare executemany {em:.0f} rows/s, bare COPY {cp:.0f} rows/s; "
            f"ratio rows {n / dt / em:.2f}x executemany, {n / dt / cp:.2f}x COPY; all messages/s vs "
            f"executemany rows/s {len(tail) / dt / em:.2f}x (goal >= 0.3x)"
        )


def fill_region_year(dsn: str, pumps: int, events_per_day: float, alarms_per_day: float) -> datetime:
    """A year of data for ``pumps`` pumps (30 per gateway), generated in SQL. Returns 'now'."""
    end = datetime(2027, 1, 1, tzinfo=UTC)
    start = end - timedelta(days=365)
    with connect(dsn) as conn:
        migrate(conn)
        with conn.transaction():
            d = date(start.year, start.month, 1)
            while d < end.date():
                ensure_month(conn, "events", d)
                ensure_month(conn, "alarms", d)
                d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        gws = (pumps + 29) // 30
        t0 = time.perf_counter()
        conn.execute(
            "INSERT INTO gateways (site, gateway, ward, state, state_since, heartbeat_at, heartbeat_interval_s,"
            " library_version, central_library_version) SELECT 'region', 'gw' || g, 'ward-' || (g %% 120),"
            " 'online', %s, %s, 60, 'L8', 'L8' FROM generate_series(1, %s) g",
            (start, end, gws),
        )
        conn.execute(
            """INSERT INTO pumps (gateway_id, pump, manufacturer, model, serial_number, firmware,
                        library_version, identity_at, asset_tag, bed, availability, first_seen, last_seen)
                        SELECT 1 + (i / 30), 'p' || (i %% 30), 'Maker' || (i %% 3), 'Model' || (i %% 7), 'SN' || i,
                               '1.' || (i %% 5), CASE WHEN i %% 10 < 8 THEN 'L8' ELSE 'L7' END, %(s)s, 'A-' || i,
                               'bed' || (i %% 30), 'online', %(s)s,
                               %(e)s - make_interval(hours => (i %% 500))
                        FROM generate_series(0, %(n)s - 1) i""",
            {"s": start, "e": end, "n": pumps},
        )
        conn.execute("""INSERT INTO pump_identity_history (gateway_id, pump, observed_at, manufacturer, model,
                        serial_number, firmware, library_version, source)
                        SELECT gateway_id, pump, first_seen, manufacturer, model, serial_number, firmware, 'L7', 'state'
                        FROM pumps""")
        conn.execute(
            """INSERT INTO pump_identity_history (gateway_id, pump, observed_at, manufacturer, model,
                        serial_number, firmware, library_version, source)
                        SELECT gateway_id, pump, %s + make_interval(hours => (hashtext(pump || gateway_id) & 1023)),
                               manufacturer, model, serial_number, firmware, 'L8', 'state'
                        FROM pumps WHERE library_version = 'L8'""",
            (end - timedelta(days=60),),
        )
        conn.execute(
            "INSERT INTO library_releases (version, released_at) VALUES ('L8', %s)", (end - timedelta(days=60),)
        )
        n_events = int(365 * events_per_day)
        conn.execute(
            """INSERT INTO events (gateway_id, pump, message_id, kind, occurred_at, channel, drug, care_area,
                        detail)
                        SELECT p.gateway_id, p.pump, md5(p.gateway_id || p.pump || i),
                               CASE WHEN (i + p.gateway_id) %% 211 = 0 THEN 'device_swapped'
                                    ELSE (ARRAY['delivery_start','delivery_stop','delivery_complete',
                                                'comm_lost'])[1 + (i + p.gateway_id) %% 4] END,
                               %(s)s + make_interval(secs => i * 86400.0 / %(epd)s + (p.gateway_id %% 600)),
                               '1', CASE WHEN i %% 5 = 0 THEN NULL ELSE 'drug' || (i %% 40) END, 'ICU', '{}'
                        FROM pumps p CROSS JOIN generate_series(0, %(n)s - 1) i""",
            {"s": start, "epd": events_per_day, "n": n_events},
        )
        n_alarms = int(365 * alarms_per_day)
        conn.execute(
            """INSERT INTO alarms (gateway_id, pump, message_id, phase, alert_instance_id, occurred_at,
                        channel, code, alarm_kind, priority)
                        SELECT p.gateway_id, p.pump, md5('a' || p.gateway_id || p.pump || i || ph), ph,
                               p.pump || '-' || i,
                               %(s)s + make_interval(secs => i * 86400.0 / %(apd)s + CASE WHEN ph = 'end' THEN 90 ELSE 0 END),
                               '1', 'C' || (i %% 6), (ARRAY['occlusion','air_in_line','vtbi_complete','battery_low',
                                                           'door_open','upstream_occlusion'])[1 + i %% 6],
                               CASE WHEN i %% 3 = 0 THEN 'high' ELSE 'medium' END
                        FROM pumps p CROSS JOIN generate_series(0, %(n)s - 1) i CROSS JOIN unnest(ARRAY['onset','end']) ph""",
            {"s": start, "apd": alarms_per_day, "n": n_alarms},
        )
        conn.execute(
            """INSERT INTO verdicts (gateway_id, pump, channel, observed_at, drug, care_area, severity, kinds,
                        library_version)
                        SELECT p.gateway_id, p.pump, '1', %(s)s + make_interval(days => i),
                               'drug' || (i %% 40), 'ICU', 'ok',
                               ARRAY[(ARRAY['within_limits','within_limits','above_soft_max','below_soft_min'])[1 + i %% 4]],
                               'L8'
                        FROM pumps p CROSS JOIN generate_series(0, 364, 2) i""",
            {"s": start},
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        with conn.cursor() as cur:
            n_ev = cur.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
            n_al = cur.execute("SELECT count(*) FROM alarms").fetchone()[0]  # type: ignore[index]
        print(
            f"reports  generated {pumps} pumps, {n_ev} events, {n_al} alarm messages over a year "
            f"in {time.perf_counter() - t0:.0f} s"
        )
    return end


def report_times(dsn: str, now: datetime) -> None:
    with connect(dsn, autocommit=True) as conn:
        for spec in REPORTS.values():
            kwargs = {"now": now} if "now" in spec.function.__code__.co_varnames else {}
            if spec.name == "uptake_timeline":
                kwargs = {"until": now}
            spec.function(conn, **kwargs)  # warm the cache once, as a running service would be
            t0 = time.perf_counter()
            rows = spec.function(conn, **kwargs)
            dt = time.perf_counter() - t0
            print(f"report   {spec.name:17} {dt * 1000:7.0f} ms  ({len(rows)} rows)  {dt / 1.0:.2f}x of the 1 s goal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=100)
    ap.add_argument("--pumps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20, help="duration of the typical and of the burst phase")
    ap.add_argument("--typical-activity", type=float, default=0.02, help="share of pumps changing per second")
    ap.add_argument("--drain-steps", type=int, default=10)
    ap.add_argument("--report-pumps", type=int, default=10_000)
    ap.add_argument("--events-per-day", type=float, default=3)
    ap.add_argument("--alarms-per-day", type=float, default=0.5)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-reports", action="store_true")
    ap.add_argument("--skip-writer", action="store_true")
    ap.add_argument("--writer-batch", type=int, default=1000, help="batch size of the writer-alone phase")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pumpgw-fleet-bench-"))
    pg = Postgres(Path(tempfile.mkdtemp(prefix="pumpgw-fleet-bench-pg-")))
    pg.init()
    pg.start()
    broker, port = start_mosquitto(work)
    service = None
    runner = None
    try:
        if not args.skip_load:
            dsn = pg.new_database()
            config = work / "fleet.toml"
            config.write_text(
                f'[database]\ndsn = "{dsn}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                f'client_id = "fleet-bench"\n[collector]\nbatch_max = 1000\nbatch_wait_ms = 50\n'
            )
            log = work / "fleet.log"
            service = start_service(config, log)
            region = Region(
                args.gateways, args.pumps, rounds=10_000, seed=1, realtime=True, activity=args.typical_activity
            )
            runner = RegionRunner("127.0.0.1", port, region, client_prefix="bench")
            runner.start(timeout=60)
            runner.wait_acked(120)
            wait_rows(dsn, 0)
            print(f"region   {args.gateways} gateways x {args.pumps} pumps; one simulation step per second")
            k = load_phase("typical", runner, dsn, service, args.seconds, args.typical_activity, 1)
            k = load_phase("burst10x", runner, dsn, service, args.seconds / 2, args.typical_activity * 10, k)
            service = drain_phase(runner, dsn, config, log, service, args.drain_steps, k)
        if not args.skip_writer:
            writer_phase(pg, args.gateways, args.pumps, args.drain_steps, args.writer_batch)
        if args.skip_reports:
            return
        report_dsn = pg.new_database()
        now = fill_region_year(report_dsn, args.report_pumps, args.events_per_day, args.alarms_per_day)
        report_times(report_dsn, now)
    finally:
        if runner is not None:
            runner.stop()
        if service is not None and service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        broker.terminate()
        broker.wait(10)
        pg.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
