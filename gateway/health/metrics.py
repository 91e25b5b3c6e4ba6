"""Prometheus metrics of one daemon, on a registry of its own (no global state).

Counters that must be counted where they happen (polls, ACKs) are incremented by the
components through the narrow methods below; figures that already live in a component
(outbox rows per lane and state, MQTT connection, library in force) are read at scrape time
by a collector, so they can never drift from what the component holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from gateway.outbox.model import STATES

# ACK latency of a healthy interface engine is milliseconds; a slow one seconds; the
# configured ack timeout (30 s by default) is the end of the scale.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # the goal: under 20 ms


class GatewayMetrics:
    """Injected into pollers and senders by gateway.daemon; rendered by ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.polls = Counter(
            "pumpgw_polls",
            "Pump polls by outcome (ok, timeout, refused, error).",
            ["pump", "outcome"],
            registry=self.registry,
        )
        self.link_reconnects = Counter(
            "pumpgw_link_reconnects",
            "Times a pump link was reopened after a failure.",
            ["link"],
            registry=self.registry,
        )
        self.acks = Counter(
            "pumpgw_hl7_acks",
            "HL7 acknowledgements received, by lane and MSA-1 code.",
            ["lane", "code"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "pumpgw_hl7_ack_latency_seconds",
            "Time from sending an HL7 message to its ACK.",
            ["lane"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "pumpgw_event_loop_lag_seconds",
            "How late the event loop ran its periodic tick (gateway/looplag.py).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

    # -- what the components call ---------------------------------------------------------
    def poll_done(self, pump: str, outcome: str) -> None:
        self.polls.labels(pump, outcome).inc()

    def link_reopened(self, link: str) -> None:
        self.link_reconnects.labels(link).inc()

    def loop_lag_sampled(self, lag_s: float) -> None:
        self.loop_lag.observe(lag_s)

    def ack_received(self, lane: str, code: str, latency_s: float) -> None:
        self.acks.labels(lane, code).inc()
        self.ack_latency.labels(lane).observe(latency_s)

    # -- wiring and output ----------------------------------------------------------------
    def observe(self, snapshot: Callable[[], dict]) -> None:
        """Read the component figures from ``snapshot()`` (gateway.health.status) at scrape time."""
        self.registry.register(_StatusCollector(snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StatusCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list:
        return []  # unchecked collector: its families depend on the configuration

    def collect(self) -> Iterator:
        s = self._snapshot()
        info = InfoMetricFamily("pumpgw_gateway", "This gateway and the pumpgw version it runs.")
        info.add_metric(
            [],
            {
                "version": s["version"],
                "site": s["gateway"]["site"],
                "ward": s["gateway"]["ward"],
                "gateway_id": s["gateway"]["gateway_id"],
            },
        )
        yield info
        ready = GaugeMetricFamily("pumpgw_ready", "1 when /healthz reports ready.")
        ready.add_metric([], 1.0 if s["health"]["ready"] else 0.0)
        yield ready
        msgs = GaugeMetricFamily("pumpgw_outbox_messages", "Outbox rows per lane and state.", labels=["lane", "state"])
        oldest = GaugeMetricFamily(
            "pumpgw_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending message per lane (0 when none).",
            labels=["lane"],
        )
        for lane in s["lanes"]:
            for state in STATES:
                msgs.add_metric([lane["lane"], state], float(lane[state]))
            oldest.add_metric([lane["lane"]], float(lane["oldest_pending_age_s"] or 0.0))
        yield msgs
        yield oldest
        events = CounterMetricFamily(
            "pumpgw_events", "Pump events routed (infusion, alarm, communication).", labels=["pump"]
        )
        up = GaugeMetricFamily("pumpgw_pump_communicating", "1 while the pump answers polls.", labels=["pump"])
        for pump in s["pumps"]:
            events.add_metric([pump["id"]], float(pump["events"]))
            up.add_metric([pump["id"]], 0.0 if pump["communication"] == "lost" else 1.0)
        yield events
        yield up
        links = GaugeMetricFamily(
            "pumpgw_link_up", "1 while the pump link (serial line, rack) is open.", labels=["link"]
        )
        for link in s["links"]:
            links.add_metric([link["link"]], 1.0 if link["up"] else 0.0)
        yield links
        mqtt = GaugeMetricFamily(
            "pumpgw_mqtt_connected", "1 while connected to the MQTT broker (absent when disabled)."
        )
        if s["mqtt"]["enabled"]:
            mqtt.add_metric([], 1.0 if s["mqtt"]["connected"] else 0.0)
        yield mqtt
        lib = InfoMetricFamily("pumpgw_drug_library", "The drug library in force (version empty when none).")
        lib.add_metric([], {"version": s["library"]["version"] or "", "status": s["library"]["status"]})
        yield lib
        alerts = CounterMetricFamily("pumpgw_gateway_alerts", "Technical alerts raised by the gateway.")
        alerts.add_metric([], float(s["alerts"]["raised"]))
        yield alerts
