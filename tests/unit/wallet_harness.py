"""One wallet built whole, as `startup` builds it, over an in-memory Redis and a node double
of the test's own: the unit tests drive the wallet and its consumer through their public
interfaces."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from depeg_processor.chain.product import ProductCalls
from depeg_processor.chain.signing import TransactionSigner
from depeg_processor.clock import Clock
from depeg_processor.consumer.config import ConsumerConfig
from depeg_processor.consumer.loop import Consumer
from depeg_processor.faults import NO_FAULTS, Faults
from depeg_processor.fees import Block, FeePolicy
from depeg_processor.inbound.stream import StreamQueue
from depeg_processor.metrics import Metrics
from depeg_processor.signer.policy import SigningPolicy
from depeg_processor.state import SharedState
from depeg_processor.wallet.budget import PoolSpend, RevertLedger
from depeg_processor.wallet.context import Shared, WalletConfig, WalletContext
from depeg_processor.wallet.last_seen import LastSeenHolder
from depeg_processor.wallet.lease import Lease, LeaseKeeper
from depeg_processor.wallet.nonce import NonceManager
from depeg_processor.wallet.records import TxRecords
from depeg_processor.wallet.wallet import Wallet

from .helpers import CHAIN_ID, MESSAGE_HELPER

STREAM = "application:signatures"
PRODUCT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEY = bytes.fromhex("c3" * 32)
GWEI = 10**9
ETHER = 10**18


class CallSimulator:
    """Simulates each call with an `eth_call` in the node double's `batch`; what is in flight
    (`before`) is asked for, as the real simulator asks `eth_simulateV1`, and kept in
    `replayed` (and `done`) for the tests to see."""

    simulates = True
    gas_cap = 50_000_000  # the node's simulation gas cap, as the real simulator's default

    def __init__(self, chain: Any) -> None:
        self._chain = chain
        self.replayed: list[list[dict]] = []
        self.done: list = []  # what each simulation was told counts as mined already

    def simulate(
        self, calls: list[dict], block: str = "pending", *, before=(), done=lambda error: False
    ) -> list:
        self.replayed.append(list(before))
        self.done.append(done)
        return self._chain.batch([("eth_call", [call, block]) for call in calls])


def flat_fees(base_fee: int = 10 * GWEI, tip: int = GWEI, cap: int = 100 * GWEI) -> FeePolicy:
    return FeePolicy(
        base_fee=lambda: Block(number=1, base_fee=base_fee),
        suggested_tip=lambda: tip,
        cap=cap,
        tip=tip,
    )


def build_wallet(
    client: Any,
    *,
    chain: Any,
    clock: Clock,
    fees: FeePolicy | None = None,
    config: WalletConfig | None = None,
    state: SharedState | None = None,
    metrics: Metrics | None = None,
    faults: Faults = NO_FAULTS,
    prefix: str = STREAM,
    owner: str | None = None,
    lease_owner: str = "me",
    spend: bool = False,
    pending_nonce: int = 0,
    stop: threading.Event | None = None,
    lease_key: str = STREAM + ":lease:w",
    others: tuple[TxRecords, ...] = (),
    consumer: str = "c",
    claim_idle: float = 0.0,
    policy: SigningPolicy | None = None,
) -> Wallet:
    """A wallet of the pool as `startup` builds it; its lease is not taken yet (the test
    takes it, as the lease keeper would)."""
    signer = TransactionSigner(KEY, policy=policy)
    records = TxRecords(client, prefix=prefix, stream=STREAM, owner=owner)
    in_pool = TxRecords(client, prefix=prefix, stream=STREAM, owner=owner or signer.address)
    shared = Shared(
        chain=chain,
        simulator=CallSimulator(chain),
        product=ProductCalls(),
        redis=client,
        fees=fees or flat_fees(),
        state=state or SharedState(monotonic=clock.monotonic),
        metrics=metrics or Metrics(CollectorRegistry()),
        clock=clock,
        faults=faults,
        pool=(in_pool, *others),  # the other wallets of the pool: `others`
        reverts=RevertLedger(client, stream=STREAM),
    )
    queue = StreamQueue(
        client,
        stream=STREAM,
        group="g",
        consumer=consumer,
        dead_letter_key=STREAM + ":dead",
        clock=clock.now,
        on_dead_letter=shared.metrics.dead_letter,
        claim_idle=claim_idle,
    )
    queue.ensure_group()
    lease = Lease(client, key=lease_key, owner=lease_owner, ttl=15.0, monotonic=clock.monotonic)
    ctx = WalletContext(
        config=config
        or WalletConfig(
            chain_id=CHAIN_ID,
            product=PRODUCT,
            min_confirmations=2,
            poll_interval=1.0,
            stuck_blocks=2,
            stuck_seconds=3600.0,
        ),
        shared=shared,
        address=owner or signer.address,
        signer=signer,
        lease=lease,
        records=records,
        nonces=NonceManager(
            chain_pending=lambda: pending_nonce, highest_recorded=records.highest_nonce
        ),
        last_seen=LastSeenHolder(),
        queue=queue,
        dead_letters=queue.dead_letters,
        spend=(
            PoolSpend(
                client,
                stream=STREAM,
                address=owner or signer.address,
                own=prefix,
                pool=[prefix],
            )
            if spend
            else None
        ),
    )
    return Wallet(ctx, keeper=LeaseKeeper(lease, stop=stop or threading.Event()))


def consumer_config(**changes: Any) -> ConsumerConfig:
    config = ConsumerConfig(
        chain_id=CHAIN_ID,
        message_helper=MESSAGE_HELPER,
        min_balance=ETHER,
        read_count=20,
        read_block=0.001,
        balance_too_low_timeout=0,
        error_timeout=0,
        max_deliveries=3,
        balance_ttl=5.0,
    )
    return dataclasses.replace(config, **changes)


def build_consumer(
    wallet: Wallet,
    *,
    clock: Clock,
    state: SharedState,
    metrics: Metrics,
    stop: threading.Event | None = None,
    **changes: Any,
) -> Consumer:
    """The wallet's consumer, as `startup` builds it: `clock`, `state` and `metrics` are
    those the wallet was built with."""
    return Consumer(
        wallet,
        config=consumer_config(**changes),
        stop=stop or threading.Event(),
        state=state,
        metrics=metrics,
        clock=clock,
    )
