"""Wiring: build the parts from the settings and clients handed in, then run them.

The entry point creates the clients and the stop event; this module only connects them. The
main thread runs the processor loop, a named thread the receipt watcher, another the monitor,
and a housekeeping thread trims the stream now and then.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import redis
from eth_account.signers.local import LocalAccount
from waitress.server import create_server

from . import errors, redis_server
from .chain import Chain, NodeUnavailable
from .config import Settings
from .errors import StartupError
from .faults import NO_FAULTS, Faults
from .fees import FeePolicy
from .lease import Lease, LeaseKeeper, owner_id
from .monitor import Limits, make_monitor_app
from .nonce import NonceManager
from .processor import Processor
from .queue import StreamQueue
from .product import ProductCalls
from .metrics import Metrics, null_metrics
from .records import SpendLedger, TxRecord, TxRecords
from .retention import StreamRetention
from .systemd import Notifier
from .sender import Sender
from .signing import TransactionSigner
from .state import SharedState
from .watcher import ReceiptWatcher

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


class Service:
    """The processor with its watcher thread and monitor server."""

    def __init__(self, *, settings: Settings, redis_client: redis.Redis, chain: Chain,
                 account: LocalAccount, stop: threading.Event,
                 metrics: Optional[Metrics] = None, notifier: Optional[Notifier] = None,
                 faults: Faults = NO_FAULTS,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stop_event = stop
        self._redis = redis_client
        self._chain = chain
        self.account = account
        self._clock = clock
        self._monotonic = monotonic
        self._faults = faults
        self.metrics = metrics or null_metrics()
        self.notifier = notifier or Notifier(None)
        self.state = SharedState(monotonic=monotonic)
        chain.attach(max_batch=settings.chain_max_batch, wait=stop.wait,
                     on_rate_limit=self.state.set_rate_limited)
        self.queue = StreamQueue(redis_client, stream=settings.stream_key, group=settings.group,
                                 consumer=settings.consumer,
                                 dead_letter_key=settings.dead_letter_key, clock=clock,
                                 on_dead_letter=self.metrics.dead_letter)
        self.records = TxRecords(redis_client, prefix=settings.stream_key)
        self.retention = StreamRetention(redis_client, stream=settings.stream_key,
                                         retention=settings.stream_retention, clock=clock)
        self.lease = Lease(redis_client, key=f"{settings.stream_key}:lease:{account.address}",
                           owner=owner_id(settings.consumer), ttl=settings.lease_ttl,
                           monotonic=monotonic)
        self.nonces = NonceManager(chain_pending=lambda: chain.nonce(account.address, "pending"),
                                   highest_recorded=self.records.highest_nonce)
        self.fees = FeePolicy(base_fee=chain.base_fee, suggested_tip=chain.max_priority_fee,
                              cap=settings.max_fee_per_gas, tip=settings.max_priority_fee_per_gas,
                              monotonic=monotonic)
        self.limits = Limits(alert_balance=settings.alert_balance,
                             loop_max_age=settings.loop_max_timeout,
                             watcher_max_age=max(settings.loop_max_timeout,
                                                 10 * settings.receipt_poll_interval),
                             max_non_ack_pending=settings.max_non_ack_pending)
        self.keeper = LeaseKeeper(self.lease, stop=stop, wanted=self._processor_alive)
        self.metrics.wallet(account.address).local_nonce.set_function(
            lambda: self.nonces.next or 0)
        self.app = make_monitor_app(self.state, self.limits, self.metrics.registry)
        self.processor: Optional[Processor] = None
        self.watcher: Optional[ReceiptWatcher] = None
        self._threads: list[threading.Thread] = []
        self._server = None

    # -- start-up ------------------------------------------------------------------------------
    def serve_monitor(self) -> int:
        """Start the monitor server in its own thread; returns the bound port."""
        self._server = create_server(self.app, host=self.settings.host, port=self.settings.port,
                                     threads=2, ident="depeg-backend-processor",
                                     clear_untrusted_proxy_headers=True,
                                     connection_limit=MONITOR_CONNECTION_LIMIT,
                                     channel_timeout=MONITOR_CHANNEL_TIMEOUT,
                                     cleanup_interval=MONITOR_CLEANUP_INTERVAL,
                                     asyncore_use_poll=True)
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
            raise StartupError(f"DEPEG_PRODUCT_ADDRESS {settings.product_address} has no contract "
                               f"code on chain {chain_id}")
        calls = ProductCalls()
        result = chain.call({"to": settings.product_address, "data": calls.message_helper_call()})
        if not result or len(result) < 66:
            raise StartupError(f"DEPEG_PRODUCT_ADDRESS {settings.product_address}: "
                               "getMessageHelperAddress() returned nothing; is this the product?")
        helper = calls.message_helper_result(result)
        self.state.set_balance(chain.balance(self.account.address))
        self.state.node_ok()
        self._check_redis_server()
        self.queue.ensure_group()
        self.state.set_non_ack_pending(self.queue.own_pending())
        self.state.redis_ok()
        log.info("processor wallet %s on chain %s, product %s (message helper %s), "
                 "%s transaction(s) in flight", self.account.address, chain_id,
                 settings.product_address, helper, self.records.count())
        sender = Sender(chain=chain, signer=TransactionSigner(self.account.key),
                        chain_id=chain_id,
                        product=settings.product_address,
                        encode_call=lambda app: calls.apply(app.contract_args()),
                        nonces=self.nonces, fees=self.fees, records=self.records,
                        requeue=self._requeue, on_fee_bump=self.metrics.fee_bumps.inc,
                        may_send=self.lease.held, fence=self.lease.fence, faults=self._faults,
                        clock=self._clock)
        self.processor = Processor(
            redis_client=self._redis, queue=self.queue, records=self.records, sender=sender,
            nonces=self.nonces, lease=self.lease, state=self.state, stop=self.stop_event,
            max_deliveries=settings.max_deliveries, faults=self._faults,
            max_spend_per_hour=settings.max_gas_spend_per_hour, metrics=self.metrics,
            on_beat=self.notifier.watchdog, clock=self._clock,
            balance=lambda: chain.balance(self.account.address),
            min_balance=settings.min_balance, chain_id=chain_id, message_helper=helper,
            read_count=settings.read_count, read_block=settings.read_block_timeout,
            balance_too_low_timeout=settings.balance_too_low_timeout,
            error_timeout=settings.error_timeout, monotonic=self._monotonic)
        self.watcher = ReceiptWatcher(
            chain=chain, records=self.records, queue=self.queue, sender=sender,
            redis_client=self._redis, state=self.state, stop=self.stop_event,
            address=self.account.address, min_confirmations=settings.min_confirmations,
            poll_interval=settings.receipt_poll_interval, stuck_blocks=settings.stuck_blocks,
            stuck_seconds=settings.stuck_timeout, may_send=self.lease.held,
            fence=self.lease.fence, lease_generation=lambda: self.lease.generation,
            metrics=self.metrics,
            spend=(SpendLedger(self._redis, prefix=settings.stream_key)
                   if settings.max_gas_spend_per_hour is not None else None),
            clock=self._clock,
            monotonic=self._monotonic)

    def _check_redis_server(self) -> None:
        """Refuse a Redis too old for the stream commands; warn about settings that can lose
        data (see README, "Redis requirements")."""
        server = redis_server.inspect(self._redis)
        log.info("%s", server.summary())
        for warning in server.warnings:
            log.warning("redis: %s", warning)
        for item in server.unchecked:
            log.warning("redis: could not check %s", item)

    def _requeue(self, record: TxRecord) -> None:
        self.queue.reissue(record.entity_id, forget=self.records.key(record.entity_id),
                           inflight_key=self.records.inflight_key, fence=self.lease.fence)

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
        self.keeper.run_once()  # a free lease is taken before the loop starts: no standby blip
        self._start_thread("lease-keeper", self.keeper.run)
        self._start_thread("receipt-watcher", self.watcher.run)
        self._start_thread("housekeeping", lambda: self.retention.run(self.stop_event))
        self.notifier.ready(f"processing {self.settings.stream_key} as {self.account.address}")
        self.processor.run()
        self.lease.release()

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads and the server, each against one deadline."""
        self.stop_event.set()
        self.notifier.stopping()
        if self._server is not None:
            # Closed from its own loop thread (a trigger thunk): closing its sockets from here
            # would race the select() in that thread.
            self._server.trigger.pull_trigger(self._server.close)
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
            if thread.is_alive():
                log.warning("thread %s did not stop within %.0fs", thread.name, timeout)
