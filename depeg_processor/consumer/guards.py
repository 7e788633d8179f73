"""The guards that hold the consumer loop: the wallet's lease, its balance, the pool's hourly
spending ceiling and revert budget, a transaction stuck under the fee cap, and the cap on
transactions in flight.

Each reads what the wallet's receipt watcher last saw of it (`Wallet.last_seen()`), never the
monitor's store (`state`), which it only tells why the loop holds. A guard that holds says why
once, pauses for BALANCE_TOO_LOW_TIMEOUT and says once when it lets go again. The cap is
back-pressure, not trouble: it waits only as long as the watcher takes to see a block, and the
monitor shows it without failing readiness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..state import AT_CAP, STANDBY, SharedState
from ..wallet.records import TxRecord
from ..wallet.wallet import Wallet
from .config import ConsumerConfig

log = logging.getLogger(__name__)

MIN_CAP_WAIT = 0.05  # seconds: the shortest look again at a wallet at its cap
STANDBY_CHECK_INTERVAL = 0.5  # s: the longest a standby waits for the lease between two looks


class Guards:
    """The conditions under which one wallet's consumer may take entries."""

    def __init__(
        self,
        wallet: Wallet,
        *,
        config: ConsumerConfig,
        state: SharedState,
        monotonic: Callable[[], float],
        pause: Callable[[float], None],
    ) -> None:
        self._wallet = wallet
        self._config = config
        self._pause = pause
        self._state = state
        self._monotonic = monotonic
        self._holding_for: set[str] = set()  # "balance", "spend", "reverts", "stuck", "cap", …
        self._sending: int | None = None  # the take-over this loop works in (None: standby)
        self.claim_due = True  # claim what consumers gone meanwhile left, before reading
        self._known_balance: int | None = None
        self._balance_read_at = 0.0

    def hold_lease(self) -> bool:
        """Send only while the wallet's lease is held and its take-over done
        (`Wallet.take_over`); on a new take-over, claim abandoned entries before reading."""
        wallet = self._wallet
        if wallet.take_over():
            if wallet.adopted != self._sending:
                self._sending, self.claim_due = wallet.adopted, True
                self._state.set_holding(None)
            return True
        holder = wallet.lease.holder()
        if self._sending is not None:
            log.warning(
                "lost the wallet's lease %s (now held by %s); standing by", wallet.lease.key, holder
            )
        self._sending = None
        self._state.set_holding(
            f"{STANDBY}: another processor ({holder}) holds the wallet's lease"
            if holder and holder != wallet.lease.owner
            else f"{STANDBY}: waiting for the wallet's lease"
        )
        # woken as soon as the lease keeper gains the lease (at once after a clean release)
        wallet.lease.wait_held(STANDBY_CHECK_INTERVAL)
        return False

    def lease_lost(self) -> None:
        """A write was refused for the lease: take the wallet over again before sending."""
        self._sending = None
        self._wallet.lost()

    def nothing_stuck(self) -> bool:
        """A transaction of this wallet that cannot be mined under the fee cap holds reading:
        new ones would queue behind it, while other wallets of the pool can send them."""
        stuck = self._wallet.last_seen().stuck
        return self._guard(
            "stuck",
            f"{stuck}; taking no new entries" if stuck else None,
            resumed="no transaction is stuck any more; resuming",
        )

    def room(self) -> int:
        """How many entries the wallet may take now: its in-flight limit (what the next
        blocks take by gas, at most PROCESSOR_MAX_IN_FLIGHT, 16 while the node's pool is
        full: see wallet/block_room.py) less its transactions signed and not yet mined. A
        full node pool keeps that many of an account
        and evicts the rest first, so at the cap the wallet reads nothing (the pool's other
        wallets take the entries) and looks again after half a block, asking the node for the
        mined count each time. 0 after such a wait."""
        upper = self._config.max_in_flight
        cap = self._wallet.in_flight_limit(upper)
        unmined = self._wallet.unmined()
        if unmined >= cap:  # the watcher's figure may be a block old: ask the node
            unmined = self._wallet.unmined(fresh=True)
        if unmined < cap:
            if "cap" in self._holding_for:
                log.info("%s of %s transactions unmined; reading again", unmined, cap)
                self._holding_for.discard("cap")
                self._state.set_holding(None)
            return cap - unmined
        if "cap" not in self._holding_for:
            self._holding_for.add("cap")
            log.info(
                "wallet %s has %s transactions unmined (in-flight limit %s, "
                "PROCESSOR_MAX_IN_FLIGHT %s); reading no new entries until some are mined",
                self._wallet.address,
                unmined,
                cap,
                upper,
            )
        self._state.set_holding(
            f"{AT_CAP}: wallet {self._wallet.address} has {unmined} transactions unmined "
            f"(in-flight limit {cap}, PROCESSOR_MAX_IN_FLIGHT {upper}); reading again as they "
            "are mined"
        )
        self._pause(self._cap_wait())
        return 0

    def _cap_wait(self) -> float:
        """How long a wallet at its cap waits before asking again: half a block (a mined
        transaction frees its place within about a block), at most the watcher's pace."""
        block_time = self._wallet.last_seen().block_time
        if block_time is None:
            return self._config.in_flight_poll
        return min(self._config.in_flight_poll, max(MIN_CAP_WAIT, block_time / 2))

    def nonces_explained(self) -> bool:
        """Before a batch: hold while a wallet of the pool has transactions in the node's pool
        that no record explains (Redis lost writes; see wallet.reconcile), looking again every
        half a block; say so once, and once when they are mined (or dropped)."""
        why = self._wallet.unexplained()
        if why is None:
            if "nonces" in self._holding_for:
                log.info("the pool's transactions are explained by its records again; sending")
                self._holding_for.discard("nonces")
                self._state.set_holding(None)
            return True
        if "nonces" not in self._holding_for:
            self._holding_for.add("nonces")
            log.warning(
                "holding until they are mined: %s (Redis lost the writes that recorded them)",
                why,
            )
        self._state.set_holding(f"wallet {self._wallet.address}: {why}; waiting until mined")
        self._pause(self._cap_wait())
        return False

    def within_spending_limit(self) -> bool:
        """With MAX_GAS_SPEND_PER_HOUR set, hold while the pool's last hour has reached the
        ceiling: what every wallet's mined transactions paid plus the most their ones in
        flight can cost (counted by the receipt watcher each round, and raised by each
        transaction this wallet sends)."""
        ceiling = self._config.max_spend_per_hour
        if ceiling is None:
            return True
        spent = self._wallet.last_seen().spent_last_hour
        over = spent is not None and spent >= ceiling
        return self._guard(
            "spend",
            f"spending guard: {spent} wei spent by the pool in the last hour (mined and in "
            f"flight) reached MAX_GAS_SPEND_PER_HOUR {ceiling} wei"
            if over
            else None,
            resumed=f"spending guard: {spent} wei in the last hour, below the ceiling again; "
            "resuming",
        )

    def within_revert_budget(self) -> bool:
        """With MAX_REVERTED_GAS_PER_HOUR above 0, hold while the gas the pool's transactions
        that reverted on chain used in the last hour has reached it (the receipt watcher reads
        the pool's ledger each round). Without a private relay nothing sent can be kept from
        the race that makes it revert, so the policy is to hold, not to pick what to send; the
        hold lifts by itself as the hour rolls below the budget. Readiness names it."""
        budget = self._config.max_reverted_gas_per_hour
        gas = self._wallet.last_seen().reverted_gas
        spent = (
            f"revert budget spent: {gas} gas reverted in the last hour reached "
            f"MAX_REVERTED_GAS_PER_HOUR {budget}"
            if budget and gas is not None and gas >= budget
            else None
        )
        self._state.set_reverts(spent)
        return self._guard(
            "reverts",
            spent,
            resumed=f"revert budget: {gas} gas reverted in the last hour, below "
            f"MAX_REVERTED_GAS_PER_HOUR {budget} again; resuming",
        )

    def balance_sufficient(self, *, working: bool) -> bool:
        minimum = self._config.min_balance
        balance = self._current_balance(working=working)
        if self._guard(
            "balance",
            None
            if balance >= minimum
            else (
                f"balance {balance} wei is below PROCESSOR_MIN_BALANCE {minimum} wei; nothing "
                f"is sent, re-checking in {self._config.balance_too_low_timeout:.0f}s"
            ),
            resumed=f"balance {balance} wei is sufficient again; resuming",
        ):
            return True
        self._known_balance = None  # read it afresh after the wait
        return False

    def _current_balance(self, *, working: bool) -> int:
        """The wallet balance as far as it matters now. It is read from the node only with
        entries in hand (at most every `balance_ttl` seconds) or while holding for a low
        balance; an idle loop asks the node nothing and keeps the watcher's last figure. Each
        transaction sent lowers it locally by what it may cost."""
        wallet, now = self._wallet, self._monotonic()
        holding = "balance" in self._holding_for  # a hold's pause is over: look again
        if self._known_balance is None and not working and not holding:
            self._known_balance = wallet.last_seen().balance  # the watcher's last figure
        stale = now - self._balance_read_at >= self._config.balance_ttl
        if self._known_balance is None or holding or (working and stale):
            self._known_balance = wallet.read_balance()
            self._balance_read_at = now
            self._state.set_balance(self._known_balance)
            self._state.node_ok("processor")
        return self._known_balance

    def sent(self, records: list[TxRecord]) -> None:
        """Transactions just recorded: their worst-case cost is spent until the node says."""
        for record in records:
            worst_case = record.gas * record.max_fee_per_gas
            if self._known_balance is not None:
                self._known_balance -= worst_case
            if self._config.max_spend_per_hour is not None:
                self._wallet.count_spend(worst_case)

    def observed_balance(self, balance: int, *, at: float) -> None:
        """The balance read elsewhere at `at` (monotonic): start-up's, with the node's facts.
        It stands for this guard's own reading until `balance_ttl` has passed since, so the
        first batch does not ask the node again what it said a moment before; after that the
        guard reads as it always does."""
        self._known_balance, self._balance_read_at = balance, at

    def forget_balance(self) -> None:
        """Read the balance from the node next time."""
        self._known_balance = None

    def _guard(self, kind: str, blocked: str | None, *, resumed: str) -> bool:
        """Hold for BALANCE_TOO_LOW_TIMEOUT while `blocked` says why; once it no longer does,
        say so once and clear the hold. True when sending may go on."""
        if blocked is None:
            if kind in self._holding_for:
                log.info("%s", resumed)
                self._holding_for.discard(kind)
                self._state.set_holding(None)
            return True
        self._holding_for.add(kind)
        self.hold(blocked, self._config.balance_too_low_timeout)
        return False

    def hold(self, reason: str, timeout: float | None = None) -> None:
        reason = f"wallet {self._wallet.address}: {reason}"
        log.warning("holding: %s", reason)
        self._state.set_holding(reason)
        self._pause(self._config.error_timeout if timeout is None else timeout)
