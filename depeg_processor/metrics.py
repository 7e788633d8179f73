"""Prometheus metrics (prometheus-client), on a registry handed in so tests get their own.

The threads update them where the events happen; `/metrics` on the monitor's port serves the
registry. Labels are kept to small fixed sets: the wallet gauges carry the wallet's address
(one series per wallet of the pool), a dead letter is counted by the kind its caller
names (`errors.KINDS`, or a known revert code such as `DMH-001`), never by its free-text reason,
which may carry what users sent.
"""

from __future__ import annotations

import dataclasses
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .errors import KINDS, REVERT_CODES

LATENCY_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


@dataclasses.dataclass(frozen=True)
class WalletGauges:
    """One wallet's series of the wallet gauges."""

    balance: Gauge
    local_nonce: Gauge
    chain_nonce: Gauge
    in_flight: Gauge
    oldest_in_flight: Gauge


class Metrics:
    """Every metric the service exports, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = "depeg_processor_"
        self.balance = Gauge(
            p + "wallet_balance_wei", "Processor wallet balance", ["wallet"], registry=registry
        )
        self.nonce = Gauge(
            p + "nonce",
            "Next nonce: local (nonce manager) and chain (latest transaction count)",
            ["source", "wallet"],
            registry=registry,
        )
        self.read = Counter(
            p + "entries_read",
            "Stream entries delivered to this process for the first time (applications in)",
            registry=registry,
        )
        self.submitted = Counter(
            p + "applications_submitted",
            "Applications whose transaction was recorded and broadcast",
            registry=registry,
        )
        self.confirmed = Counter(
            p + "applications_confirmed", "Applications confirmed and purged", registry=registry
        )
        self.dead_lettered = Counter(
            p + "applications_dead_lettered",
            "Applications set aside",
            ["reason"],
            registry=registry,
        )
        self.stream_lag = Gauge(
            p + "stream_lag",
            "Stream entries not yet delivered to the consumer group",
            registry=registry,
        )
        self.unacknowledged = Gauge(
            p + "stream_unacknowledged",
            "Entries delivered to the consumer group but not acknowledged",
            registry=registry,
        )
        self.own_unacknowledged = Gauge(
            p + "consumer_unacknowledged",
            "Entries delivered to this process's consumer but not acknowledged",
            registry=registry,
        )
        self.in_flight = Gauge(
            p + "transactions_in_flight",
            "Recorded transactions not yet confirmed",
            ["wallet"],
            registry=registry,
        )
        self.oldest_in_flight = Gauge(
            p + "oldest_in_flight_seconds",
            "Age of the oldest transaction in flight",
            ["wallet"],
            registry=registry,
        )
        self.fee_bumps = Counter(
            p + "fee_bumps", "Stuck transactions replaced at a higher fee", registry=registry
        )
        self.rpc_errors = Counter(
            p + "rpc_errors", "JSON-RPC errors by kind", ["kind"], registry=registry
        )
        self.redis_errors = Counter(
            p + "redis_errors", "Redis errors by kind", ["kind"], registry=registry
        )
        self.durable_timeouts = Counter(
            p + "redis_durable_timeouts",
            "Write-aheads broadcast before Redis said they reached the AOF or a replica",
            registry=registry,
        )
        self.gas_spent = Counter(
            p + "gas_spent_wei", "Wei paid for confirmed transactions", registry=registry
        )
        self.reverted_spent = Counter(  # with gas_spent: what the wallets paid
            p + "reverted_spent_wei",
            "Wei paid for transactions that reverted on chain",
            registry=registry,
        )
        self.signing_refused = Counter(
            p + "signing_refused",
            "Transactions the signing policy refused to sign (a record or a call not the "
            "processor's to make)",
            registry=registry,
        )
        self.reverted_transactions = Counter(
            p + "reverted_transactions",
            "Transactions of the pool that reverted on chain",
            registry=registry,
        )
        self.reverted_gas_last_hour = Gauge(
            p + "reverted_gas_last_hour",
            "Gas the pool's transactions that reverted on chain used in the last hour",
            registry=registry,
        )
        self.revert_budget = Gauge(
            p + "revert_budget_gas",
            "MAX_REVERTED_GAS_PER_HOUR: at it every wallet holds sending (0: no budget)",
            registry=registry,
        )
        self.submit_latency = Histogram(
            p + "enqueue_to_submit_seconds",
            "From the web app's timestamp to the broadcast",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        labels = ["provider"]  # the provider's index in CHAIN_RPC_URL, never its URL
        self.provider_usable = Gauge(
            p + "provider_usable", "1 while the provider takes calls", labels, registry=registry
        )
        self.provider_head = Gauge(
            p + "provider_head", "The provider's head as last seen", labels, registry=registry
        )
        self.provider_lag = Gauge(
            p + "provider_lag_blocks",
            "Blocks the provider was behind the best head seen",
            labels,
            registry=registry,
        )
        self.provider_latency = Gauge(
            p + "provider_latency_seconds",
            "Running average of the provider's answer times",
            labels,
            registry=registry,
        )
        self.provider_errors = Counter(
            p + "provider_errors",
            "Calls the provider did not answer or refused for its rate limit",
            labels,
            registry=registry,
        )
        self._errors_seen: dict[int, int] = {}
        self._lock = threading.Lock()
        self.confirm_latency = Histogram(
            p + "enqueue_to_confirmation_seconds",
            "From the web app's timestamp to the purge after confirmation",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def wallet(self, address: str) -> WalletGauges:
        """The gauges of one wallet of the pool, labelled by its address: one series per pool
        wallet, however often a process changes the wallet it sends from."""
        return WalletGauges(
            balance=self.balance.labels(wallet=address),
            local_nonce=self.nonce.labels(source="local", wallet=address),
            chain_nonce=self.nonce.labels(source="chain", wallet=address),
            in_flight=self.in_flight.labels(wallet=address),
            oldest_in_flight=self.oldest_in_flight.labels(wallet=address),
        )

    def forget_wallet(self, address: str) -> None:
        """Drop a wallet's series once this process no longer watches it, so no stale figure
        stays exported beside the new holder's."""
        for gauge, labels in (
            (self.balance, (address,)),
            (self.in_flight, (address,)),
            (self.oldest_in_flight, (address,)),
            (self.nonce, ("local", address)),
            (self.nonce, ("chain", address)),
        ):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass

    def providers(self, views: list) -> None:
        """The series of several providers (`chain.health.ProviderView`), by index."""
        for view in views:
            label = str(view.index)
            self.provider_usable.labels(provider=label).set(1 if view.usable else 0)
            if view.head is not None:
                self.provider_head.labels(provider=label).set(view.head)
            if view.lag is not None:
                self.provider_lag.labels(provider=label).set(view.lag)
            if view.latency is not None:
                self.provider_latency.labels(provider=label).set(view.latency)
            with self._lock:
                seen = self._errors_seen.get(view.index, 0)  # views may come out of order
                new = view.errors - seen
                self._errors_seen[view.index] = max(seen, view.errors)
            if new > 0:
                self.provider_errors.labels(provider=label).inc(new)

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
