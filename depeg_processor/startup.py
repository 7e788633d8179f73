"""Building the parts: the clients, the checks before the first send, and every wallet of the
pool with its consumer, each built whole.

The entry point calls `build_runtime` once per process; the service calls
`node_facts.check_node` and `check_redis` until they pass, then `build_consumers`. Nothing
here runs at import.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry

from . import durable, keys, redis_server
from .chain.calls import ChainClient
from .chain.clients import build_chain_client
from .chain.product import ProductCalls
from .chain.relay import relay_name
from .chain.signing import DigestSigner, TransactionSigner
from .chain.simulation import Simulator
from .clock import SYSTEM, Clock
from .config import Settings
from .consumer.config import ConsumerConfig
from .consumer.loop import Consumer
from .faults import NO_FAULTS, Faults
from .fees import FeePolicy
from .inbound.stream import StreamQueue
from .inbound.untrusted import REDIS_DECODING
from .metrics import Metrics
from .node_facts import NodeFacts
from .signer import wallet_signers
from .state import SharedState
from .systemd import Notifier
from .wallet.budget import PoolSpend, RevertLedger
from .wallet.context import Shared, WalletConfig, WalletContext
from .wallet.last_seen import LastSeenHolder
from .wallet.lease import Lease, LeaseKeeper, owner_id
from .wallet.nonce import NonceManager
from .wallet.pool import Member, pool
from .wallet.records import TxRecords
from .wallet.signatures import mark_lifetime
from .wallet.wallet import Wallet

log = logging.getLogger(__name__)

DRIVER_INFO = redis.DriverInfo(name="redis-py", lib_version=redis.__version__)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a process creates once and hands to everything else."""

    settings: Settings
    redis: redis.Redis
    chain: ChainClient
    accounts: list[DigestSigner]  # the pool's keys, in order (eth-account accounts too)
    stop: threading.Event
    state: SharedState
    metrics: Metrics
    notifier: Notifier
    faults: Faults = NO_FAULTS
    clock: Clock = SYSTEM


def build_redis(settings: Settings) -> redis.Redis:
    """The client every part shares. Its driver info (what CLIENT SETINFO tells the server) is
    the one redis-py would find, given: left to find it, redis-py reads its own version from
    the installed packages' metadata for every connection it opens (about 2 ms for the first,
    on the way to the first send, and a few tenths for each thread's after)."""
    return redis.Redis.from_url(
        settings.redis_url,
        **REDIS_DECODING,
        socket_timeout=max(10.0, settings.rpc_timeout),
        socket_connect_timeout=5.0,
        health_check_interval=30,
        driver_info=DRIVER_INFO,
    )


def build_runtime(
    settings: Settings,
    *,
    accounts: list[DigestSigner],
    redis_client: redis.Redis | None = None,
    chain: ChainClient | None = None,
    stop: threading.Event | None = None,
    metrics: Metrics | None = None,
    notifier: Notifier | None = None,
    faults: Faults = NO_FAULTS,
    clock: Clock = SYSTEM,
) -> Runtime:
    """The clients for `settings` (or those handed in): the node's tells the shared state when it
    is rate limited (and, with several providers, how each is doing) and waits on the stop event."""
    stop = stop or threading.Event()
    metrics = metrics or Metrics(CollectorRegistry())
    state = SharedState(monotonic=clock.monotonic)
    chain = chain or build_chain_client(
        settings.chain_rpc_urls,
        timeout=settings.rpc_timeout,
        max_batch=settings.chain_max_batch,
        on_error=metrics.rpc_error,
        on_rate_limit=state.set_rate_limited,
        on_change=lambda views: (state.set_providers(views), metrics.providers(views)),
        wait=stop.wait,
        monotonic=clock.monotonic,
        send_url=settings.chain_send_url,
    )
    if settings.chain_send_url:
        log.info(
            "raw transactions go to the private %s only (CHAIN_SEND_URL); reads to CHAIN_RPC_URL",
            relay_name(settings.chain_send_url),
        )
    return Runtime(
        settings=settings,
        redis=redis_client if redis_client is not None else build_redis(settings),
        chain=chain,
        accounts=accounts,
        stop=stop,
        state=state,
        metrics=metrics,
        notifier=notifier or Notifier(None),
        faults=faults,
        clock=clock,
    )


def check_redis(runtime: Runtime) -> StreamQueue:
    """Refuse a Redis too old for the stream commands, warn about settings that can lose data
    (README, "Redis requirements"); create the consumer group. Returns the first's stream."""
    server = redis_server.inspect(runtime.redis)
    log.info("%s", server.summary())
    for warning in server.warnings:
        log.warning("redis: %s", warning)
    for item in server.unchecked:
        log.warning("redis: could not check %s", item)
    queue = stream_queue(runtime, pool_of(runtime)[0])
    queue.ensure_group()
    return queue


def pool_of(runtime: Runtime) -> list[Member]:
    settings = runtime.settings
    return pool(runtime.accounts, stream=settings.stream_key, consumer=settings.consumer)


def stream_queue(runtime: Runtime, member: Member) -> StreamQueue:
    settings = runtime.settings
    return StreamQueue(
        runtime.redis,
        stream=settings.stream_key,
        group=settings.group,
        consumer=member.consumer,
        dead_letter_key=settings.dead_letter_key,
        clock=runtime.clock.now,
        on_dead_letter=runtime.metrics.dead_letter,
        claim_idle=settings.lease_ttl,
        max_letters=settings.dead_letter_max_count,
    )


def build_consumers(
    runtime: Runtime, node: NodeFacts, *, wanted: Callable[[], bool]
) -> list[Consumer]:
    """Every wallet of the pool, whole, each with its consumer loop. `wanted`: whether the
    process can send (its loop beats), for the lease keepers."""
    settings, chain = runtime.settings, runtime.chain
    shared = Shared(
        chain=chain,
        simulator=Simulator(chain=chain, gas_cap=settings.simulation_gas_cap),  # one per node
        product=ProductCalls(),
        redis=runtime.redis,
        fees=FeePolicy(
            base_fee=chain.latest_block,
            suggested_tip=chain.max_priority_fee,
            market=chain.fee_market,
            cap=settings.max_fee_per_gas,
            tip=settings.max_priority_fee_per_gas,
            keep=settings.min_balance,
            monotonic=runtime.clock.monotonic,
        ),
        state=runtime.state,
        metrics=runtime.metrics,
        clock=runtime.clock,
        faults=runtime.faults,
        pool=tuple(
            TxRecords(
                runtime.redis,
                prefix=member.prefix,
                stream=settings.stream_key,
                owner=member.address,
            )
            for member in pool_of(runtime)
        ),
        reverts=RevertLedger(runtime.redis, stream=settings.stream_key),
        durable=durable.wait_of(runtime.redis, settings, runtime.metrics),
    )
    runtime.metrics.revert_budget.set(settings.max_reverted_gas_per_hour)
    wallet_config = WalletConfig.from_settings(settings, chain_id=node.chain_id)
    consumer_config = ConsumerConfig.from_settings(
        settings, chain_id=node.chain_id, message_helper=node.message_helper
    )
    signers = wallet_signers(runtime.accounts, settings, node, runtime.metrics)
    consumers = []
    for member, signer in zip(pool_of(runtime), signers):
        ctx = wallet_context(runtime, shared, wallet_config, member=member, signer=signer)
        keeper = LeaseKeeper(ctx.lease, stop=runtime.stop, wanted=wanted)
        consumers.append(
            Consumer(
                Wallet(ctx, keeper=keeper),
                config=consumer_config,
                stop=runtime.stop,
                state=runtime.state,
                metrics=runtime.metrics,
                clock=runtime.clock,
                faults=runtime.faults,
                on_beat=runtime.notifier.watchdog,
            )
        )
    return consumers


def wallet_context(
    runtime: Runtime,
    shared: Shared,
    config: WalletConfig,
    *,
    member: Member,
    signer: TransactionSigner,
) -> WalletContext:
    """One wallet's stores: nothing is asked of Redis or the node here."""
    settings, client = runtime.settings, runtime.redis
    queue = stream_queue(runtime, member)
    records = TxRecords(
        client,
        prefix=member.prefix,
        stream=settings.stream_key,
        owner=member.address,
        mark_ttl=mark_lifetime(settings.stream_retention),
        hold_seconds=settings.holder_hold_seconds,
    )
    return WalletContext(
        config=config,
        shared=shared,
        address=member.address,
        signer=signer,
        lease=Lease(
            client,
            key=member.lease_key,
            owner=owner_id(member.consumer),
            ttl=settings.lease_ttl,
            monotonic=runtime.clock.monotonic,
            channel=keys.lease_released_channel(settings.stream_key),
        ),
        records=records,
        nonces=NonceManager(
            chain_pending=lambda: runtime.chain.nonce(member.address, "pending"),
            highest_recorded=records.highest_nonce,
        ),
        last_seen=LastSeenHolder(),
        queue=queue,
        dead_letters=queue.dead_letters,
        spend=(
            PoolSpend(
                client,
                stream=settings.stream_key,
                address=member.address,
                own=member.prefix,
                pool=[m.prefix for m in pool_of(runtime)],
            )
            if settings.max_gas_spend_per_hour is not None
            else None
        ),
    )
