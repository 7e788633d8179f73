"""Prometheus metrics (prometheus-client), on a registry handed in so tests get their own.

The threads update them where the events happen; `/metrics` on the monitor's port serves the
registry. Labels are kept to small fixed sets: a dead letter is counted by the kind its caller
names (`errors.KINDS`, or a known revert code such as `DMH-001`), never by its free-text reason,
which may carry what users sent.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .errors import KINDS, REVERT_CODES

LATENCY_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """Every metric the service exports, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = "depeg_processor_"
        self.balance = Gauge(p + "wallet_balance_wei", "Processor wallet balance",
                             registry=registry)
        self.nonce = Gauge(p + "nonce", "Next nonce: local (nonce manager) and chain (latest "
                           "transaction count)", ["source"], registry=registry)
        self.submitted = Counter(p + "applications_submitted", "Applications whose "
                                 "transaction was recorded and broadcast", registry=registry)
        self.confirmed = Counter(p + "applications_confirmed", "Applications confirmed and "
                                 "purged", registry=registry)
        self.dead_lettered = Counter(p + "applications_dead_lettered", "Applications set aside",
                                     ["reason"], registry=registry)
        self.stream_lag = Gauge(p + "stream_lag", "Stream entries not yet delivered to the "
                                "consumer group", registry=registry)
        self.unacknowledged = Gauge(p + "stream_unacknowledged", "Entries delivered but not "
                                    "acknowledged", registry=registry)
        self.in_flight = Gauge(p + "transactions_in_flight", "Recorded transactions not yet "
                               "confirmed", registry=registry)
        self.oldest_in_flight = Gauge(p + "oldest_in_flight_seconds", "Age of the oldest "
                                      "transaction in flight", registry=registry)
        self.fee_bumps = Counter(p + "fee_bumps", "Stuck transactions replaced at a higher fee",
                                 registry=registry)
        self.rpc_errors = Counter(p + "rpc_errors", "JSON-RPC errors by kind", ["kind"],
                                  registry=registry)
        self.redis_errors = Counter(p + "redis_errors", "Redis errors by kind", ["kind"],
                                    registry=registry)
        self.gas_spent = Counter(p + "gas_spent_wei", "Wei paid for confirmed transactions",
                                 registry=registry)
        self.submit_latency = Histogram(p + "enqueue_to_submit_seconds", "From the web app's "
                                        "timestamp to the broadcast", buckets=LATENCY_BUCKETS,
                                        registry=registry)
        self.confirm_latency = Histogram(p + "enqueue_to_confirmation_seconds", "From the web "
                                         "app's timestamp to the purge after confirmation",
                                         buckets=LATENCY_BUCKETS, registry=registry)

    def dead_letter(self, kind: str) -> None:
        known = kind in KINDS or kind in REVERT_CODES
        self.dead_lettered.labels(reason=kind if known else "other").inc()

    def redis_error(self, error: Exception) -> None:
        self.redis_errors.labels(kind=type(error).__name__).inc()

    def rpc_error(self, error: Exception) -> None:
        self.rpc_errors.labels(kind=type(error).__name__).inc()


def null_metrics() -> Metrics:
    """Metrics on a registry nobody serves (for parts built without a monitor)."""
    return Metrics(CollectorRegistry())
