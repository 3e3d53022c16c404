"""Prometheus metrics. One registry per app, so two apps in one process (tests) don't clash.

Per-frame counters (``Metrics.child``/``child2`` of a ``Counter``) count into a plain int
(``Tally``) that is added to the prometheus child when the registry is collected (a
scrape, ``get_sample_value``): prometheus_client takes a lock per ``inc`` (~1 µs, several
per round trip), an int add is ~0.1 µs. The event loop is the only writer, and collection
runs on it too, so nothing counted is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class Tally:
    """A counter child's increments, kept until the next collection (``flush``)."""

    __slots__ = ("_child", "pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.pending: float = 0

    def inc(self, amount: float = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0
            self._child.inc(pending)


class _FlushTallies:
    """Registered first, so a collection adds the pending tallies before the counters
    are read. Yields no metric of its own."""

    def __init__(self, tallies: list[Tally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterable[Any]:
        for tally in self._tallies:
            tally.flush()
        return ()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._tallies: list[Tally] = []
        self.registry.register(_FlushTallies(self._tallies))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "petspark_http_requests_total", "HTTP requests", ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "petspark_http_request_seconds", "HTTP request latency", ["route"], registry=r
        )
        self.ws_open = Gauge("petspark_ws_connections", "Open WebSocket connections", registry=r)
        self.ws_closes = Counter(
            "petspark_ws_closes_total", "WebSocket closes by close code", ["code"], registry=r
        )
        self.ws_frames_in = Counter(
            "petspark_ws_frames_in_total", "Inbound frames by message type", ["type"], registry=r
        )
        self.ws_frames_refused = Counter(
            "petspark_ws_frames_refused_total",
            "Inbound frames refused by the per-socket limits: limit=frames (the frame budget, "
            "WS_FRAMES_PER_S) or commands (the command bucket, WS_RATE_PER_S)", ["limit"],
            registry=r,
        )
        self.ws_frames_out = Counter(
            "petspark_ws_frames_out_total", "Outbound frames by message type", ["type"],
            registry=r,
        )
        self.ws_commands = Counter(
            "petspark_ws_commands_total",
            "Commands answered, by type (the protocol's command types; `invalid` for a frame "
            "with an id that did not decode) and outcome (`ok` or the error code)",
            ["type", "outcome"], registry=r,
        )
        self.ws_resumes = Counter(
            "petspark_ws_resumes_total",
            "hello with resume_from, by result: resumed (replay after resume_from) or "
            "not_resumed (beyond last_seq or pruned: delivery continues after last_seq)",
            ["result"], registry=r,
        )
        self.ws_outbox_bytes = Gauge(
            "petspark_ws_outbox_bytes",
            "Bytes of encoded frames waiting in this node's socket outboxes (at scrape time)",
            registry=r,
        )
        self.ws_command_latency = Histogram(
            "petspark_ws_command_seconds", "Command handling latency", ["type"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.ws_outbox_overflows = Counter(
            "petspark_ws_outbox_overflows_total", "Sockets closed 4008 (slow consumer)",
            registry=r,
        )
        self.ws_transport_aborts = Counter(
            "petspark_ws_transport_aborts_total",
            "Sockets whose transport was cut because their close did not finish within "
            "WS_CLOSE_TIMEOUT_S (a client that stopped reading), by the close code sent",
            ["code"], registry=r,
        )
        self.events_appended = Counter(
            "petspark_events_appended_total", "Durable events appended", registry=r
        )
        self.events_delivered = Counter(
            "petspark_events_delivered_total",
            "Durable events queued to sockets, by source: live (from the broker, in order) or "
            "replayed (read back from PostgreSQL: resume, a gap, a lost notice)", ["source"],
            registry=r,
        )
        self.event_delivery_lag = Histogram(
            "petspark_event_delivery_lag_seconds",
            "Live durable events: from their transaction's commit (wall clock of the "
            "committing node) to the write to the socket", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.broker_publish_failures = Counter(
            "petspark_broker_publish_failures_total", "Publishes the broker refused", registry=r
        )
        # --- backend outages (server.resources.outages) ---
        self.backend_up = Gauge(
            "petspark_backend_up", "1 while the backend (database, redis) answers, 0 during "
            "an outage", ["backend"], registry=r,
        )
        self.backend_unavailable = Counter(
            "petspark_backend_unavailable_total",
            "Operations that failed because the backend could not be reached (answered "
            "`unavailable` or degraded)", ["backend"], registry=r,
        )
        # --- push & mail ---
        self.pushes = Counter(
            "petspark_pushes_total",
            "Push attempts by provider (webpush, fcm, apns, log) and outcome (sent, gone, "
            "retry, dropped, logged); dropped also counts pushes given up after "
            "PUSH_MAX_ATTEMPTS", ["provider", "outcome"], registry=r,
        )
        self.push_outbox = Counter(
            "petspark_push_outbox_total",
            "Notifications the push worker decided, by outcome: queued (pushed to the user's "
            "devices) or why not (acked, muted, push_off, read, collapsed, expired, "
            "no_devices)", ["outcome"], registry=r,
        )
        self.mails = Counter(
            "petspark_mails_total", "Mails by transport (smtp, eml) and outcome (sent, failed)",
            ["transport", "outcome"], registry=r,
        )
        # --- rooms (live streaming) ---
        self.room_deliveries = Counter(
            "petspark_room_deliveries_total", "Room frames queued to member sockets on this node",
            registry=r,
        )
        self.position_rows = Counter(
            "petspark_position_check_rows_total",
            "user_streams rows this node's position check read", registry=r,
        )
        self.broker_received_messages = Counter(
            "petspark_broker_received_messages_total",
            "Notices this node received from the broker (bus: its own and all-node channels; room)",
            ["channel"], registry=r,
        )
        self.broker_received_bytes = Counter(
            "petspark_broker_received_bytes_total",
            "Bytes of the notices this node received from the broker, by channel",
            ["channel"], registry=r,
        )
        self.room_messages = Counter(
            "petspark_room_messages_total", "Room messages this node received from the broker",
            registry=r,
        )

        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, label: str) -> Any:
        """``metric.labels(label)``, cached: per-frame paths skip prometheus' lock + lookup
        (a counter's child is its ``Tally``)."""
        key = (id(metric), label)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self._wrap(metric, metric.labels(label))
        return found

    def child2(self, metric: Any, first: str, second: str) -> Any:
        """``metric.labels(first, second)``, cached like ``child``."""
        key = (id(metric), first, second)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self._wrap(metric, metric.labels(first, second))
        return found

    def _wrap(self, metric: Any, child: Any) -> Any:
        if not isinstance(metric, Counter):
            return child
        tally = Tally(child)
        self._tallies.append(tally)
        return tally

    def render(self) -> bytes:
        return generate_latest(self.registry)
