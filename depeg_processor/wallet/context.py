"""What the parts of one wallet are built from: its numbers, what the process shares between
its wallets, and the wallet's own stores. Each part takes this one object instead of a long
list of parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import redis

from ..chain.calls import ChainClient
from ..chain.product import ProductCalls
from ..chain.signing import TransactionSigner
from ..chain.simulation import Simulator
from ..clock import SYSTEM, Clock
from ..config import Settings
from ..faults import NO_FAULTS, Faults
from ..fees import FeePolicy
from ..inbound.dead_letters import DeadLetters
from ..inbound.stream import StreamQueue
from ..metrics import Metrics
from ..state import SharedState
from .block_room import BlockRoom
from .budget import PoolSpend, RevertLedger
from .last_seen import LastSeenHolder
from .lease import Lease
from .nonce import NonceManager
from .records import TxRecords


@dataclasses.dataclass(frozen=True)
class WalletConfig:
    """The numbers every wallet works by: the chain and product it signs for (as the node
    names them at start) and the watcher's settings."""

    chain_id: int
    product: str
    min_confirmations: int
    poll_interval: float  # the shortest time between two looks at the head
    stuck_blocks: int
    stuck_seconds: float
    idle_interval: float | None = None  # the head's pace with nothing in flight
    relay_drop_blocks: int | None = None  # CHAIN_SEND_DROP_BLOCKS with a relay; None: none

    @classmethod
    def from_settings(cls, settings: Settings, *, chain_id: int) -> WalletConfig:
        return cls(
            chain_id=chain_id,
            product=settings.product_address,
            min_confirmations=settings.min_confirmations,
            poll_interval=settings.receipt_poll_interval,
            stuck_blocks=settings.stuck_blocks,
            stuck_seconds=settings.stuck_timeout,
            idle_interval=settings.idle_poll_interval,
            relay_drop_blocks=settings.send_drop_blocks if settings.chain_send_url else None,
        )


@dataclasses.dataclass(frozen=True)
class Shared:
    """What the wallets of one process share: the clients, the product's ABI, the fee policy,
    the monitor's store (written, never read for decisions), the metrics, the clock and the
    fault points."""

    chain: ChainClient
    simulator: Simulator
    product: ProductCalls
    redis: redis.Redis
    fees: FeePolicy
    state: SharedState
    metrics: Metrics
    clock: Clock = SYSTEM
    faults: Faults = NO_FAULTS
    pool: tuple[TxRecords, ...] = ()  # every wallet's records: what the pool has in flight
    reverts: RevertLedger | None = None  # the pool's reverted gas, for MAX_REVERTED_GAS_PER_HOUR
    durable: Callable[[str], bool] | None = None  # the wait before a broadcast (see durable)
    room: BlockRoom = dataclasses.field(default_factory=BlockRoom)  # the in-flight limit


@dataclasses.dataclass(frozen=True)
class WalletContext:
    """One wallet's parts that hold no logic of the transaction's life: its address and
    signer, lease, nonces, records, what its watcher last saw, and its view of the stream."""

    config: WalletConfig
    shared: Shared
    address: str
    signer: TransactionSigner
    lease: Lease
    records: TxRecords
    nonces: NonceManager
    last_seen: LastSeenHolder
    queue: StreamQueue
    dead_letters: DeadLetters
    spend: PoolSpend | None = None  # with MAX_GAS_SPEND_PER_HOUR: what the pool's wallets paid

    def call(self, data: str, gas: int | None = None) -> dict:
        """The product call from this wallet with `data` (and a gas limit)."""
        call = {"from": self.address, "to": self.config.product, "data": data}
        if gas is not None:
            call["gas"] = hex(gas)
        return call
