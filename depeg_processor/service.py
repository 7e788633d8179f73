"""Wiring: build the parts from the settings and clients handed in, then run them.

The entry point creates the clients and the stop event; this module only connects them. The
main thread runs the processor loop, a named thread the receipt watcher, another the monitor,
and a housekeeping thread trims the stream now and then.

Every wallet of the pool has its own parts (`WalletParts`); the process sends from at most one
of them at a time, chosen as `wallet_choice` describes. The processor loop and the watcher work
for whichever wallet is held (with none, the first wallet's stand by and watch health only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from eth_account.signers.local import LocalAccount
from waitress.server import create_server

from . import errors, redis_server
from .chain import Chain, NodeUnavailable
from .clock import SYSTEM, Clock
from .config import Settings
from .errors import StartupError
from .faults import NO_FAULTS, Faults
from .fees import FeePolicy
from .inbound.retention import StreamRetention
from .inbound.stream import StreamQueue
from .lease import Lease, LeaseKeeper, owner_id
from .metrics import Metrics, null_metrics
from .monitor import Limits, make_monitor_app
from .nonce import NonceManager
from .processor import Processor, ProcessorConfig
from .product import ProductCalls
from .records import SpendLedger, TxRecord, TxRecords
from .sender import Sender, SenderConfig
from .signing import TransactionSigner
from .state import STANDBY, SharedState
from .systemd import Notifier
from .wallet_choice import WalletChoice, WalletParts
from .wallets import Wallet, derive_accounts, pool
from .watcher import ReceiptWatcher, WatcherConfig

log = logging.getLogger(__name__)

# The monitor's sockets. Health probes must get through however many idle connections are open
# (keep-alives of a load balancer or scraper, a port scanner). Waitress stops accepting once
# `connection_limit` connections are open (new ones then wait in the listen backlog, probes
# included) and closes connections idle for `channel_timeout` seconds, looking every
# `cleanup_interval` seconds. So: room for many connections, idle ones dropped after seconds,
# and poll() instead of select(), which fails beyond 1024 descriptors.
MONITOR_CONNECTION_LIMIT = 500
MONITOR_CHANNEL_TIMEOUT = 10
MONITOR_CLEANUP_INTERVAL = 2
STANDBY_CHECK_INTERVAL = 0.5  # how soon a standby notices that the keeper gained a lease


class Service:
    """The processor with its watcher thread and monitor server."""

    def __init__(
        self,
        *,
        settings: Settings,
        redis_client: redis.Redis,
        chain: Chain,
        account: LocalAccount,
        stop: threading.Event,
        accounts: list[LocalAccount] | None = None,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        faults: Faults = NO_FAULTS,
        clock: Clock = SYSTEM,
    ) -> None:
        self.settings = settings
        self.stop_event = stop
        self._redis = redis_client
        self._chain = chain
        if accounts is None:
            accounts = (
                [account]
                if settings.wallets == 1
                else derive_accounts(settings.mnemonic, settings.wallets)
            )
        self.account = accounts[0]
        self.clock = clock
        self._clock, self._monotonic = clock.now, clock.monotonic
        self._faults = faults
        self.metrics = metrics or null_metrics()
        self.notifier = notifier or Notifier(None)
        self.state = SharedState(monotonic=clock.monotonic)
        chain.attach(
            max_batch=settings.chain_max_batch,
            wait=stop.wait,
            on_rate_limit=self.state.set_rate_limited,
        )
        wallets = pool(accounts, stream=settings.stream_key, consumer=settings.consumer)
        self.parts = [self._wallet_parts(w, a) for w, a in zip(wallets, accounts)]
        self.choice = WalletChoice(self.parts, redis_client=redis_client, monotonic=clock.monotonic)
        first = self.parts[0]
        self.queue, self.records, self.lease = first.queue, first.records, first.lease
        self.nonces, self.keeper = first.nonces, first.keeper
        self.retention = StreamRetention(
            redis_client,
            stream=settings.stream_key,
            retention=settings.stream_retention,
            clock=clock.now,
        )
        self.fees = FeePolicy(
            base_fee=chain.latest_block,
            suggested_tip=chain.max_priority_fee,
            cap=settings.max_fee_per_gas,
            tip=settings.max_priority_fee_per_gas,
            keep=settings.min_balance,
            monotonic=clock.monotonic,
        )
        self.limits = Limits(
            alert_balance=settings.alert_balance,
            loop_max_age=settings.loop_max_timeout,
            watcher_max_age=max(settings.loop_max_timeout, 10 * settings.receipt_poll_interval),
            max_non_ack_pending=settings.max_non_ack_pending,
        )
        self.app = make_monitor_app(self.state, self.limits, self.metrics.registry)
        self.processor: Processor | None = None
        self.watcher: ReceiptWatcher | None = None
        self._threads: list[threading.Thread] = []
        self._server = None

    def _wallet_parts(self, wallet: Wallet, account: LocalAccount) -> WalletParts:
        """The parts of one wallet that need no node: its lease, records and queue view."""
        settings, client = self.settings, self._redis
        records = TxRecords(
            client, prefix=wallet.prefix, stream=settings.stream_key, owner=wallet.address
        )
        lease = Lease(
            client,
            key=wallet.lease_key,
            owner=owner_id(wallet.consumer),
            ttl=settings.lease_ttl,
            monotonic=self._monotonic,
        )
        queue = StreamQueue(
            client,
            stream=settings.stream_key,
            group=settings.group,
            consumer=wallet.consumer,
            dead_letter_key=settings.dead_letter_key,
            clock=self._clock,
            on_dead_letter=self.metrics.dead_letter,
            claim_idle=settings.lease_ttl,
        )
        nonces = NonceManager(
            chain_pending=lambda: self._chain.nonce(account.address, "pending"),
            highest_recorded=records.highest_nonce,
        )
        return WalletParts(
            wallet=wallet,
            account=account,
            lease=lease,
            queue=queue,
            keeper=LeaseKeeper(lease, stop=self.stop_event, wanted=self._processor_alive),
            records=records,
            nonces=nonces,
        )

    # -- start-up ------------------------------------------------------------------------------
    def serve_monitor(self) -> int:
        """Start the monitor server in its own thread; returns the bound port."""
        self._server = create_server(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            threads=2,
            ident="depeg-backend-processor",
            clear_untrusted_proxy_headers=True,
            connection_limit=MONITOR_CONNECTION_LIMIT,
            channel_timeout=MONITOR_CHANNEL_TIMEOUT,
            cleanup_interval=MONITOR_CLEANUP_INTERVAL,
            asyncore_use_poll=True,
        )
        port = self._server.effective_port
        self._start_thread("monitor", self._server.run)
        log.info("monitor listening on %s:%s", self.settings.host, port)
        return port

    def prepare(self) -> bool:
        """Check the node and the product, create the consumer group and sync the nonce,
        retrying while a dependency is down. False if stopped before it succeeded."""
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                self._prepare_once()
                return True
            except NodeUnavailable as error:
                self.state.processor_beat()  # alive, waiting: liveness stays 200
                self.state.node_failed(str(error))
                log.error("start-up: %s; retrying in %.0fs", error, delay)
            except redis.RedisError as error:
                self.state.processor_beat()
                self.state.redis_failed(f"{type(error).__name__}: {error}")
                log.error("start-up: redis: %s; retrying in %.0fs", error, delay)
            except errors.TransientError as error:
                self.state.processor_beat()
                log.error("start-up: %s; retrying in %.0fs", error, delay)
            self.stop_event.wait(delay)
            delay = min(delay * 2, self.settings.error_timeout or 1.0)
        return False

    def _prepare_once(self) -> None:
        settings, chain = self.settings, self._chain
        chain_id = chain.chain_id()
        if not chain.code(settings.product_address):
            raise StartupError(
                f"DEPEG_PRODUCT_ADDRESS {settings.product_address} has no contract "
                f"code on chain {chain_id}"
            )
        calls = ProductCalls()
        result = chain.call({"to": settings.product_address, "data": calls.message_helper_call()})
        if not result or len(result) < 66:
            raise StartupError(
                f"DEPEG_PRODUCT_ADDRESS {settings.product_address}: "
                "getMessageHelperAddress() returned nothing; is this the product?"
            )
        helper = calls.message_helper_result(result)
        self.state.set_balance(chain.balance(self.account.address))
        self.state.node_ok()
        self._check_redis_server()
        self.queue.ensure_group()
        self.state.set_non_ack_pending(self.queue.own_pending())
        self.state.redis_ok()
        log.info(
            "processor wallet %s on chain %s, product %s (message helper %s), "
            "%s transaction(s) in flight",
            self.account.address,
            chain_id,
            settings.product_address,
            helper,
            self.records.count(),
        )
        for parts in self.parts:
            self._wallet_workers(parts, chain_id=chain_id, helper=helper, calls=calls)
        self.processor, self.watcher = self.parts[0].processor, self.parts[0].watcher

    def _wallet_workers(
        self, parts: WalletParts, *, chain_id: int, helper: str, calls: ProductCalls
    ) -> None:
        """The sender, processor loop and receipt watcher of one wallet."""
        settings, chain, lease, records = self.settings, self._chain, parts.lease, parts.records
        address = parts.account.address

        def requeue(record: TxRecord) -> None:
            parts.queue.reissue(
                record.entity_id,
                forget=records.key(record.entity_id),
                inflight_key=records.inflight_key,
                fence=lease.fence,
            )

        sender = Sender(
            config=SenderConfig.from_settings(settings, chain_id=chain_id),
            clock=self.clock,
            chain=chain,
            signer=TransactionSigner(parts.account.key),
            encode_call=lambda app: calls.apply(app.contract_args()),
            nonces=parts.nonces,
            fees=self.fees,
            records=records,
            requeue=requeue,
            on_fee_bump=self.metrics.fee_bumps.inc,
            may_send=lease.held,
            fence=lease.fence,
            faults=self._faults,
        )
        parts.sender = sender
        parts.processor = Processor(
            config=ProcessorConfig.from_settings(
                settings, chain_id=chain_id, message_helper=helper
            ),
            clock=self.clock,
            redis_client=self._redis,
            queue=parts.queue,
            records=records,
            sender=sender,
            nonces=parts.nonces,
            lease=lease,
            state=self.state,
            stop=self.stop_event,
            faults=self._faults,
            metrics=self.metrics,
            on_beat=self.notifier.watchdog,
            balance=lambda: chain.balance(address),
            wallet=address,
        )
        parts.watcher = ReceiptWatcher(
            config=WatcherConfig.from_settings(settings),
            clock=self.clock,
            chain=chain,
            records=records,
            queue=parts.queue,
            sender=sender,
            redis_client=self._redis,
            state=self.state,
            stop=self.stop_event,
            address=address,
            may_send=lease.held,
            fence=lease.fence,
            lease_generation=lambda: lease.generation,
            metrics=self.metrics,
            spend=(
                SpendLedger(self._redis, prefix=parts.wallet.prefix)
                if settings.max_gas_spend_per_hour is not None
                else None
            ),
        )

    def _check_redis_server(self) -> None:
        """Refuse a Redis too old for the stream commands; warn about settings that can lose
        data (see README, "Redis requirements")."""
        server = redis_server.inspect(self._redis)
        log.info("%s", server.summary())
        for warning in server.warnings:
            log.warning("redis: %s", warning)
        for item in server.unchecked:
            log.warning("redis: could not check %s", item)

    def _processor_alive(self) -> bool:
        """Whether the processor loop is starting or beating: the lease is held only for a
        process that can send (a hung loop lets it run out, so a standby takes over)."""
        beat = self.state.snapshot().processor_beat
        return beat is None or self._monotonic() - beat <= self.limits.loop_max_age

    # -- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Start the lease keeper and watcher threads and run the processor loop in this
        thread until stopped; then give the lease up so a standby takes over at once."""
        assert self.processor is not None and self.watcher is not None, "prepare() first"
        self.choice.keep_leases_once()  # a free lease is taken before the loop: no standby blip
        self._start_thread("lease-keeper", self._keep_leases)
        self._start_thread("receipt-watcher", self._watch)
        self._start_thread("housekeeping", lambda: self.retention.run(self.stop_event))
        self.notifier.ready(
            f"processing {self.settings.stream_key} with a pool of "
            f"{len(self.parts)} wallet(s) from {self.account.address}"
        )
        log.info(
            "processor loop started (stream %s, group %s, %s wallet(s))",
            self.settings.stream_key,
            self.settings.group,
            len(self.parts),
        )
        while not self.stop_event.is_set():
            if self.choice.current is None and len(self.parts) > 1:
                self._stand_by()
            else:  # the held wallet's loop, or the single wallet's standby
                self.choice.working().processor.run_once()
                try:
                    self.choice.take_a_left_wallet()
                except redis.RedisError as error:  # looked for again next interval
                    log.warning("could not look for wallets left in flight: %s", error)
        for parts in self.parts:  # the batch in hand goes out before the lease does
            parts.sender.finish_broadcast()
        log.info("processor loop stopped")
        for parts in self.parts:
            parts.lease.release()

    def _keep_leases(self) -> None:
        interval = self.choice.interval
        log.info(
            "lease keeper started (%s wallet(s), renewed every %.1fs)", len(self.parts), interval
        )
        while not self.stop_event.is_set():
            try:
                self.choice.keep_leases_once()
            except Exception:  # a bug must not stop the renewals for good: log it, go on
                log.exception("lease keeper round failed")
            self.stop_event.wait(interval)
        log.info("lease keeper stopped")

    def _watch(self) -> None:
        """The receipt watcher of the wallet held (with none, the first one's: health only)."""
        log.info("receipt watcher started (%s confirmations)", self.settings.min_confirmations)
        watched: WalletParts | None = None
        while not self.stop_event.is_set():
            try:
                parts = self.choice.working()
                if parts is not watched:
                    self._export_gauges(parts, instead_of=watched)
                    watched = parts
                parts.watcher.step()
            except Exception:  # a bug must not stop the purging for good: log it, go on
                log.exception("receipt watcher round failed")
            self.stop_event.wait(self.settings.receipt_poll_interval)
        log.info("receipt watcher stopped")

    def _export_gauges(self, parts: WalletParts, *, instead_of: WalletParts | None) -> None:
        """The wallet gauges of /metrics are those of the wallet watched now: a wallet given up
        (its lease lost, or the first one watched while standing by) leaves no series frozen
        beside its new holder's."""
        if instead_of is not None:
            self.metrics.forget_wallet(instead_of.wallet.address)
        self.metrics.wallet(parts.wallet.address).local_nonce.set_function(
            lambda: parts.nonces.next or 0
        )

    def _stand_by(self) -> None:
        """Every wallet of the pool is held by another process: wait for one to come free."""
        self.state.processor_beat()
        self.notifier.watchdog()
        self.state.set_holding(
            f"{STANDBY}: all {len(self.parts)} wallets of the pool are held by other processors"
        )
        self.stop_event.wait(STANDBY_CHECK_INTERVAL)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads and the server, each against one deadline."""
        self.stop_event.set()
        self.notifier.stopping()
        server, self._server = self._server, None  # a second shutdown finds nothing to close
        if server is not None:
            # Closed from its own loop thread (a trigger thunk): closing its sockets from here
            # would race the select() in that thread.
            try:
                server.trigger.pull_trigger(server.close)
            except OSError as error:  # its loop has closed the trigger already
                log.debug("monitor server already closed: %s", error)
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
            if thread.is_alive():
                log.warning("thread %s did not stop within %.0fs", thread.name, timeout)
