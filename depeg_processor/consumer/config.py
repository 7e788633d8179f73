"""The consumer loop's numbers: from the settings, and the chain id and message helper the node
names at start (the signatures are checked against them)."""

from __future__ import annotations

import dataclasses

from ..config import Settings, default


@dataclasses.dataclass(frozen=True)
class ConsumerConfig:
    chain_id: int
    message_helper: str
    min_balance: int
    read_count: int
    read_block: float
    balance_too_low_timeout: float
    error_timeout: float
    max_deliveries: int
    balance_ttl: float = 5.0
    max_spend_per_hour: int | None = None
    max_reverted_gas_per_hour: int = default("max_reverted_gas_per_hour")  # 0: no budget
    claim_interval: float | None = None  # how often abandoned entries are claimed (lease TTL)
    max_in_flight: int = default("max_in_flight")  # signed and not yet mined, at most
    # how often a wallet at that cap looks again (the watcher's pace)
    in_flight_poll: float = default("receipt_poll_interval")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, chain_id: int, message_helper: str
    ) -> ConsumerConfig:
        return cls(
            chain_id=chain_id,
            message_helper=message_helper,
            min_balance=settings.min_balance,
            read_count=settings.read_count,
            read_block=settings.read_block_timeout,
            balance_too_low_timeout=settings.balance_too_low_timeout,
            error_timeout=settings.error_timeout,
            max_deliveries=settings.max_deliveries,
            max_spend_per_hour=settings.max_gas_spend_per_hour,
            max_reverted_gas_per_hour=settings.max_reverted_gas_per_hour,
            max_in_flight=settings.max_in_flight,
            in_flight_poll=settings.receipt_poll_interval,
        )
