"""The check before signing: would the product take these applications, given everything the
pool already has in flight?

The node's pending block holds only one block's worth of the transaction pool, by gas: with 40
real applications in flight (1.5 M gas each) it sees 19 of them, so a simulation against
"pending" misses what the others change (a bundle's free capital, a signature used, a holder's
premium balance or allowance), and such a transaction reverts on chain, paid for. So where the
node offers `eth_simulateV1`, the batch is simulated against the latest block (read afresh for
each batch: the web app's approval before an application is in it) after a replay of every
transaction of the pool that the block does not hold yet (`mined.py`; their records hold sender,
calldata and gas; the request within the node's simulation gas cap), in one simulated block:
each application sees all of them and the ones before it in the batch. What is mined at that
block already fails there with its signature used (the product checks that first), so it counts
once. The simulation is the only read, so what it counts as mined and the state it runs on are
one (a separate read of the wallets' transaction counts may come from a newer state while the
node seals a block: anvil answered so, and over-capacity applications were sent on it).

Without `eth_simulateV1` each application is an `eth_call` against "pending", and the guarantee
is kept another way (`alone.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import redis

from .. import errors
from ..chain.calls import ChainClient, block_of
from ..chain.product import ProductCalls
from ..chain.simulation import Simulator, fitting
from ..fees import FeePolicy
from ..inbound.application import Application
from .alone import held_back, waiting_for_room
from .mined import MinedBlocks
from .pool_flight import InFlightTx, PoolInFlight
from .records import TxRecords

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.2  # on an estimate: state can change between simulation and inclusion


class Preflight:
    """Simulates one wallet's batches after what its pool has in flight."""

    def __init__(
        self,
        *,
        call: Callable[..., dict],
        product: ProductCalls,
        chain: ChainClient,
        simulator: Simulator,
        fees: FeePolicy,
        pool: Sequence[TxRecords],
        client: redis.Redis,
        on_gas_used: Callable[[int], None] | None = None,
    ) -> None:
        self._call = call  # (calldata, gas limit or None) -> the product call from this wallet
        self._product = product
        self._chain = chain
        self._simulator = simulator
        self._fees = fees
        self._pool = PoolInFlight(pool, client)  # every wallet's records: what is in flight
        self._tag: str | dict = "latest"  # the block the last batch was simulated at
        self.replayed = 0  # how many transactions in flight were replayed before it
        self._gas_limit: int | None = None  # learned from eth_estimateGas, see check()
        self._mined = MinedBlocks(fetch=self._blocks)
        self._on_gas_used = on_gas_used  # told each application's simulated gasUsed

    def check(self, apps: Sequence[Application]) -> list[tuple[str, int] | errors.ProcessorError]:
        """Calldata and gas limit per application, or the error in its place (a revert gives
        PermanentError or ProductInactive), checked after everything the pool has in flight
        (see the module docstring), the applications one after another in one simulated block.

        Once a gas limit is known the batch is simulated at it (one EVM run each: success
        there means the transaction succeeds with it). `eth_estimateGas` (a search over many
        runs) sets the limit on the first batch and for any application that does not fit it;
        the batch is then simulated again in sequence at the limits found, so no application
        goes out that only succeeded alone."""
        calldata = [self._product.apply(app.contract_args()) for app in apps]
        outcomes: list = [None] * len(apps)
        if self._gas_limit is not None:
            limits = dict.fromkeys(range(len(apps)), self._gas_limit)
        else:
            limits = self._estimate(range(len(apps)), calldata, outcomes)
        gas = [limits.get(i, 0) for i in range(len(apps))]
        for i, held in enumerate(self.hold_back(apps, gas)):
            if held and outcomes[i] is None:
                outcomes[i] = waiting_for_room(apps[i])
        for again in (False, True):
            todo = [i for i in range(len(apps)) if outcomes[i] is None]
            if not todo:
                break
            results = self.simulate([self._call(calldata[i], limits[i]) for i in todo])
            unclear = []
            for i, result in zip(todo, results):
                if not isinstance(result, errors.ProcessorError):
                    # signed at the limit it succeeded at, not fitted to its gasUsed: a
                    # transaction before it that is mined after it, late, never, or reverted
                    # (an attacker can make it revert) leaves the chain colder than any
                    # simulation, and an out-of-gas revert is paid (docs/performance.md).
                    # The gasUsed sizes the in-flight limit.
                    used = getattr(result, "gas_used", None)
                    if used and self._on_gas_used is not None:
                        self._on_gas_used(used)
                    outcomes[i] = (calldata[i], limits[i])
                elif _reasoned(result) or again:
                    outcomes[i] = result
                else:
                    unclear.append(i)  # out of gas at the limit, or unclear: estimate it
            if not unclear:
                break
            limits.update(self._estimate(unclear, calldata, outcomes))
            for i in todo:  # the sequence changed: simulate the rest again with it
                if isinstance(outcomes[i], tuple):
                    outcomes[i] = None
        self._wait_for_what_is_in_flight(apps, calldata, limits, outcomes)
        return outcomes

    def _wait_for_what_is_in_flight(
        self, apps: Sequence[Application], calldata: list[str], limits: dict, outcomes: list
    ) -> None:
        """A refusal that only follows from what is in flight is not final: that may still
        fail or be dropped. Such an application waits (not an attempt) until it is mined, and
        is judged then; one refused at the same block without the replay is refused for good."""
        refused = [
            i
            for i, outcome in enumerate(outcomes)
            if isinstance(outcome, errors.PermanentError) and i in limits
        ]
        if not refused or not self.replayed:
            return
        calls = [self._call(calldata[i], limits[i]) for i in refused]
        for i, alone in zip(refused, self.alone(calls)):
            if not isinstance(alone, errors.ProcessorError):
                outcomes[i] = errors.WaitingForRoom(
                    f"application {apps[i].entity_id} is refused only after what is in flight "
                    f"({outcomes[i]}); it waits until that is mined"
                )

    def _estimate(self, indices: Sequence[int], calldata: list[str], outcomes: list) -> dict:
        """Gas limits by `eth_estimateGas` with GAS_HEADROOM, each on the larger of two
        estimates in one request: against the latest block, the coldest state the transaction
        can meet (what the pool has in flight mined after it, or never: a storage slot it
        writes first costs more there), and against the pending block (what is in flight may
        leave it more to do). An application whose pending estimate fails gets the error as
        its outcome; one that fails only against the latest block needs what is in flight,
        and takes the pending estimate (its simulation after the replay decides)."""
        indices = list(indices)
        results = self._chain.batch(
            [
                ("eth_estimateGas", [self._call(calldata[i]), tag])
                for i in indices
                for tag in ("latest", "pending")
            ]
        )
        limits = {}
        for n, i in enumerate(indices):
            cold, warm = results[2 * n], results[2 * n + 1]
            if isinstance(warm, errors.ProcessorError):
                outcomes[i] = warm
                continue
            gas = max(
                int(warm, 16), 0 if isinstance(cold, errors.ProcessorError) else int(cold, 16)
            )
            limits[i] = int(gas * GAS_HEADROOM)
            self._gas_limit = max(self._gas_limit or 0, limits[i])
        return limits

    @property
    def replays(self) -> bool:
        """Whether the node simulates with a replay (`eth_simulateV1`) or each call alone."""
        return self._simulator.simulates

    def simulate(self, calls: list[dict]) -> list:
        """Each call's result (see `Simulator.simulate`), after everything in flight that the
        simulated block does not hold yet (see `mined.py`). The request stays within the
        node's simulation gas cap: the calls that do not fit after the replay wait for the
        next batch (WaitingForRoom: back-pressure, not an attempt); a refusal for the cap
        teaches the simulator a lower one and the batch is fitted to it once more."""
        simulator, fees = self._simulator, self._fees
        self.replayed = 0
        if not self.replays:
            return simulator.simulate(calls, "pending")
        fees.current(fresh=True)  # the latest block now: what the web app did is in it
        latest = fees.latest
        if latest is not None:
            tag = block_tag(latest.block_hash, latest.number)
        else:
            tag = block_tag(fees.last_block_hash, fees.last_block)
        self._mined.follow(latest)
        before = [
            self._call(t.record.data, t.record.gas) | {"from": t.sender}
            for t in self._pool.read(mined=self._mined.holds)
            if t.record.data and t.record.gas and not self._mined.holds(t.record)
        ]
        self._tag, self.replayed = tag, len(before)
        for _try in range(2):
            fit = fitting(before, calls, simulator.gas_cap)
            if fit < len(calls):
                log.info(
                    "%s of %s call(s) wait for room: %s replayed in flight leave room for %s "
                    "under the node's simulation gas cap of %s",
                    len(calls) - fit,
                    len(calls),
                    len(before),
                    fit,
                    simulator.gas_cap,
                )
            if not fit:
                return [self._no_room(len(before))] * len(calls)
            if before:
                log.debug("simulating %s call(s) after %s in flight", fit, len(before))
            try:
                results = simulator.simulate(calls[:fit], tag, before=before, done=signature_used)
            except errors.ReplayFailed as error:
                log.warning("%s; the batch waits for them", error)
                return [error] * len(calls)
            except errors.SimulationTooLarge as error:
                refused = error
                continue
            return results + [self._no_room(len(before))] * (len(calls) - fit)
        return [refused] * len(calls)

    def _no_room(self, replayed: int) -> errors.WaitingForRoom:
        return errors.WaitingForRoom(
            f"waits for room under the node's simulation gas cap ({self._simulator.gas_cap}) "
            f"after {replayed} transactions in flight"
        )

    def alone(self, calls: list[dict]) -> list:
        """The calls simulated at the block of the last batch, without what is in flight."""
        return self._simulator.simulate(calls, self._tag)

    def _blocks(self, numbers: Sequence[int]) -> list:
        """The blocks of these numbers (None for one the node did not give), in one batch."""
        answers = self._chain.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return [block_of(a) if isinstance(a, dict) else None for a in answers]

    def in_flight(self) -> list[InFlightTx]:
        """Every record in flight of every wallet of the pool, in nonce order per wallet."""
        return self._pool.read()

    def hold_back(self, apps: Sequence[Application], gas: Sequence[int]) -> list[bool]:
        """Without a replay: which applications wait for the next batch (see held_back)."""
        if self.replays:
            return [False] * len(apps)
        self._fees.current()  # the latest block's gas limit, cached for about a block
        room = self._fees.block_gas_limit or None
        if room is not None:
            room -= sum(tx.record.gas for tx in self.in_flight())
        return held_back(apps, gas, room)


def block_tag(block_hash: str, number: int | None) -> str | dict:
    """The block to simulate at, by its hash (EIP-1898) where known: a node asked by number
    for the block it is sealing may answer one call from the block before and the next from
    the new one, and the count of what is mined and the simulation must read the same state."""
    if block_hash:
        return {"blockHash": block_hash}
    return hex(number) if number is not None else "latest"


def signature_used(error: Exception) -> bool:
    """A replayed transaction that is mined already: the product refuses its signature."""
    return isinstance(error, errors.PermanentError) and error.kind in errors.SIGNATURE_USED


def _reasoned(result: errors.ProcessorError) -> bool:
    """A revert with the product's reason, or the node down: the same at any gas limit."""
    return isinstance(
        result, (errors.ProductInactive, errors.NodeUnavailable, errors.WaitingForRoom)
    ) or (isinstance(result, errors.PermanentError) and "ERROR:" in result.reason)
