"""The threads of one process, and its shutdown.

The main thread runs the consumer loop of the wallet held, a named thread its receipt watcher,
another the lease keeper, another the monitor server, and a housekeeping thread trims the
stream now and then. The process sends from at most one wallet of its pool at a time, chosen as
`wallet.sending` describes; with none held, the first wallet's parts stand by and watch health.
The parts are built by `startup`; nothing here creates a client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from waitress.wasyncore import close_all

from . import errors, keys, startup
from .consumer.guards import STANDBY_CHECK_INTERVAL
from .consumer.loop import Consumer
from .inbound.dead_letters import DeadLetters
from .inbound.retention import StreamRetention
from .monitor import Limits, make_monitor_app
from .monitor_server import create_monitor_server
from .node_facts import check_node
from .startup import Runtime
from .state import STANDBY
from .wallet.handover import Releases
from .wallet.sending import SendingWallet
from .wallet.wallet import Wallet

log = logging.getLogger(__name__)

# The monitor's sockets. Health probes must get through however many idle or slow connections
# are open (keep-alives of a load balancer or scraper, a port scanner, a slow-headers attack).
# Beyond `connection_limit` open connections the one waiting longest for its request is closed
# (`monitor_server`), connections idle for `channel_timeout` seconds or whose request headers
# take over MONITOR_HEADER_TIMEOUT are closed, looking every `cleanup_interval` seconds; poll()
# instead of select(), which fails beyond 1024 descriptors. No request body is read.
MONITOR_CONNECTION_LIMIT = 500
MONITOR_CHANNEL_TIMEOUT = 10
MONITOR_HEADER_TIMEOUT = 5
MONITOR_CLEANUP_INTERVAL = 2
PROBE_TICK = 1.0  # s between looks for idle providers (each is probed at most every 6 s)


class Service:
    """The consumer loop with its watcher, lease keeper, housekeeping and monitor threads."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings, self.state, self.metrics = settings, runtime.state, runtime.metrics
        self.stop_event = runtime.stop
        self._monotonic = runtime.clock.monotonic
        self.limits = Limits(
            alert_balance=settings.alert_balance,
            loop_max_age=settings.loop_max_timeout,
            watcher_max_age=max(settings.loop_max_timeout, 10 * settings.receipt_poll_interval),
            max_non_ack_pending=settings.max_non_ack_pending,
        )
        self.app = make_monitor_app(self.state, self.limits, self.metrics.registry)
        self.retention = StreamRetention(
            runtime.redis,
            stream=settings.stream_key,
            retention=settings.stream_retention,
            clock=runtime.clock.now,
            letters=DeadLetters(
                runtime.redis,
                stream=settings.stream_key,
                group=settings.group,
                key=settings.dead_letter_key,
                clock=runtime.clock.now,
            ),
            letter_retention=settings.dead_letter_retention,
        )
        self.consumers: list[Consumer] = []  # built by prepare(), once the node answered
        self._by_wallet: dict[str, Consumer] = {}
        self.sending: SendingWallet | None = None
        self._threads: list[threading.Thread] = []
        self._server = None
        self._sockets: dict = {}  # the monitor server's socket map: listener and connections

    @property
    def wallets(self) -> list[Wallet]:
        return [consumer.wallet for consumer in self.consumers]

    # -- start-up ------------------------------------------------------------------------------
    def serve_monitor(self) -> int:
        """Start the monitor server in its own thread; returns the bound port."""
        self._server = create_monitor_server(
            self.app,
            sockets=self._sockets,
            header_timeout=MONITOR_HEADER_TIMEOUT,
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
        """Check the node, the product and Redis, create the consumer group and build the
        wallets, retrying while a dependency is down. False if stopped before it succeeded."""
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                self._prepare_once()
                return True
            except errors.NodeUnavailable as error:
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
        runtime, settings = self.runtime, self.settings
        read_at = self._monotonic()  # the balance below is at least this fresh
        node = check_node(settings, runtime.chain, runtime.accounts[0].address)
        self.state.set_balance(node.balance)
        self.state.node_ok()
        queue = startup.check_redis(runtime)
        self.state.set_non_ack_pending(queue.own_pending())
        self.state.redis_ok()
        self.consumers = startup.build_consumers(runtime, node, wanted=self._processor_alive)
        self._by_wallet = {c.wallet.address: c for c in self.consumers}
        self.consumers[0].wallet.observed_balance(node.balance)
        self.consumers[0].guards.observed_balance(node.balance, at=read_at)
        self.sending = SendingWallet(
            self.wallets,
            redis_client=runtime.redis,
            monotonic=self._monotonic,
            idle=lambda wallet: self._by_wallet[wallet.address].idle,
            releases=Releases(
                runtime.redis,
                channel=keys.lease_released_channel(settings.stream_key),
                stop=self.stop_event,
                monotonic=self._monotonic,
            ),
        )
        log.info(
            "processor wallet %s on chain %s, product %s (message helper %s), "
            "%s transaction(s) in flight",
            runtime.accounts[0].address,
            node.chain_id,
            settings.product_address,
            node.message_helper,
            self.consumers[0].wallet.records.count(),
        )

    def _processor_alive(self) -> bool:
        """Whether the consumer loop is starting or beating: the lease is held only for a
        process that can send (a hung loop lets it run out, so a standby takes over)."""
        beat = self.state.snapshot().processor_beat
        return beat is None or self._monotonic() - beat <= self.limits.loop_max_age

    # -- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Start the lease keeper, watcher and housekeeping threads and run the consumer loop
        in this thread until stopped; then give the leases up so a standby takes over."""
        assert self.sending is not None, "prepare() first"
        sending = self.sending
        sending.keep_leases_once()  # a free lease is taken before the loop: no standby blip
        self._start_thread("lease-keeper", lambda: sending.run(self.stop_event))
        self._start_thread("receipt-watcher", self._watch)
        self._start_thread("housekeeping", lambda: self.retention.run(self.stop_event))
        self._start_thread("provider-probe", self._probe)
        self.runtime.notifier.ready(
            f"processing {self.settings.stream_key} with a pool of "
            f"{len(self.consumers)} wallet(s) from {self.runtime.accounts[0].address}"
        )
        log.info(
            "processor loop started (stream %s, group %s, %s wallet(s))",
            self.settings.stream_key,
            self.settings.group,
            len(self.consumers),
        )
        while not self.stop_event.is_set():
            if sending.current is None and len(self.consumers) > 1:
                self._stand_by()
                continue
            self._by_wallet[sending.working().address].run_once()
            try:
                sending.take_a_left_wallet()
            except redis.RedisError as error:  # looked for again next interval
                log.warning("could not look for wallets left in flight: %s", error)
        for wallet in self.wallets:  # the batch in hand goes out before the lease does
            wallet.close()
        log.info("processor loop stopped")
        for wallet in self.wallets:
            wallet.lease.release()

    def _watch(self) -> None:
        """The receipt watcher of the wallet held (with none, the first one's: health only)."""
        log.info("receipt watcher started (%s confirmations)", self.settings.min_confirmations)
        watched: Wallet | None = None
        while not self.stop_event.is_set():
            try:
                wallet = self.sending.working()
                if wallet is not watched:
                    self._export_gauges(wallet, instead_of=watched)
                    watched = wallet
                wallet.watch()
            except Exception:  # a bug must not stop the purging for good: log it, go on
                log.exception("receipt watcher round failed")
            self.stop_event.wait(self.settings.receipt_poll_interval)
        log.info("receipt watcher stopped")

    def _probe(self) -> None:
        """Ask the idle providers their heads, so a fallback's lag and a failed one's recovery
        are known before work needs them (one node: nothing to ask)."""
        chain = self.runtime.chain
        while not self.stop_event.wait(PROBE_TICK):
            try:
                chain.probe_idle()
            except Exception:  # a bug must not end the probes for good
                log.exception("provider probe failed")

    def _export_gauges(self, wallet: Wallet, *, instead_of: Wallet | None) -> None:
        """The wallet gauges of /metrics are those of the wallet watched now: a wallet given up
        leaves no series frozen beside its new holder's."""
        if instead_of is not None:
            self.metrics.forget_wallet(instead_of.address)
        self.metrics.wallet(wallet.address).local_nonce.set_function(lambda: wallet.next_nonce or 0)

    def _stand_by(self) -> None:
        """Every wallet of the pool is held by another process: wait for one to come free."""
        self.state.processor_beat()
        self.runtime.notifier.watchdog()
        self.state.set_holding(
            f"{STANDBY}: all {len(self.consumers)} wallets of the pool are held by other processors"
        )
        self.sending.wait_for_wallet(STANDBY_CHECK_INTERVAL)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads and the server, each against one deadline."""
        self.stop_event.set()
        self.runtime.notifier.stopping()
        server, self._server = self._server, None  # a second shutdown finds nothing to close
        if server is not None:
            # Closed from its own loop thread (a trigger thunk): closing its sockets from here
            # would race the poll() in that thread. Its open connections are closed too: a
            # scraper's kept-alive one would keep the loop running until its channel timeout.
            sockets = self._sockets

            def close() -> None:
                server.close()
                close_all(sockets)

            try:
                server.trigger.pull_trigger(close)
            except OSError as error:  # its loop has closed the trigger already
                log.debug("monitor server already closed: %s", error)
        self.runtime.chain.close()
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
            if thread.is_alive():
                log.warning("thread %s did not stop within %.0fs", thread.name, timeout)
