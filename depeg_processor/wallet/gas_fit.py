"""Gas limits that let the blocks fill: close to what a transaction uses, never short of it.

A block builder takes a transaction only while its gas *limit* fits what is left of the block,
so a limit far above the gas used leaves room empty (the real product's applications use about
1.5 M; at the first estimate x 1.2, 2.06 M, a 30 M block took 19 where the gas had room for 20).
An out-of-gas revert is paid for all the same, so a fitted limit is only used where the batch
succeeded at exactly those limits in two simulations (`prove`), and only while blocks are
crowded: below a block's worth in flight the generous limit costs nothing (fees are paid on the
gas used) and saves the extra simulations.

The two simulations bracket the chain the transaction can meet. After everything the pool has
in flight (what the check itself replays), and after only the wallet's own transactions in
flight: those are mined before it or it is not mined at all, while another wallet's may be
mined after it, late or never (dropped, behind a nonce gap), leaving storage unwritten that the
first simulation saw written. That costs real gas: a write from zero is 20,000 against 2,900,
and the real product's first policy of a fresh bundle used 1.59 M where the next used 1.41 M
(bench/real_product.py). A call that fails the second simulation keeps its generous limit.

A wallet's limits never fall from one nonce to the next (a fitted limit is raised to the one
before it, never above what the call succeeded at): anvil, building a block, skips a
transaction whose limit does not fit what is left, tries the same wallet's next one, and drops
that and every later one from its pool as invalid, its nonce not being next (a bench run lost
nine transactions of a wallet so, a fitted batch behind a generous limit). geth stops taking
the wallet's transactions for that block, which the rule does not hurt.

The fitted limit is the simulated gasUsed x NEED plus DRIFT:
- NEED covers what a call needs above what it uses: a CALL forwards at most 63/64 of the gas
  left, and refunds are paid only at the end. The real product used 0.993-0.996 of its
  `eth_estimateGas`. A failure at the fitted limits raises NEED for the next batches.
- DRIFT covers what neither simulation holds, while the transaction waits for its block: the
  chain between the two (some of the others' transactions mined first), transactions from
  outside the pool, and the product's own growth: its gas rises by about 60,000 with each
  further active bundle of the riskpool (the riskpool looks at every one when it
  underwrites). DRIFT is two such bundles, or seven storage slots written from zero (17,100
  each). Beyond that a fitted transaction runs out of gas, paid; the generous limit covers
  about four more bundles. The blocks still take 20 applications of 1.47 M at it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from .. import errors
from ..chain.simulation import Simulator

log = logging.getLogger(__name__)

NEED = 1.02  # gas a call needs over the gas it uses, to start with
NEED_STEP = 1.05  # raised by this after a simulation failed at the fitted limits
NEED_MOST = 1.2  # never raised above the generous limit's own headroom
DRIFT = 120_000  # two more active bundles (60,000 each), or seven slots written from zero


class GasFit:
    """One wallet's fitted gas limits and what it learned of NEED."""

    def __init__(self) -> None:
        self.need = NEED

    def limit(self, gas_used: int, proven: int) -> int:
        """The fitted limit of a call that used `gas_used` in the simulation, at most the
        limit it succeeded at (`proven`)."""
        return min(proven, math.ceil(gas_used * self.need) + DRIFT)

    def short(self) -> None:
        """A call failed at its fitted limit where it succeeded at the generous one."""
        need = min(NEED_MOST, self.need * NEED_STEP)
        if need > self.need:
            log.info(
                "a simulation failed at the fitted gas limits; fitting at %.3f x the gas used "
                "from now on",
                need,
            )
        self.need = need

    def prove(
        self,
        simulator: Simulator,
        block: str | dict,
        before: list[dict],
        calls: list[dict],
        *,
        reasoned: Callable[[Exception], bool],
        done: Callable[[Exception], bool],
    ) -> list[bool]:
        """Which of `calls` (at their fitted limits, from one wallet) succeed in sequence at
        `block` both after `before` (what the pool has in flight) and after only the wallet's
        own part of it (mined before them, or they are not mined; the others' may come after
        them, and leave the chain that much colder), two requests one after the other (not a
        JSON-RPC batch: a provider's refusal of it would end batching for the whole client).
        A failure changes what the calls after it see: after all of `before`, none is proven
        then, and one that failed for no reason of the product's (out of gas) raises NEED;
        after the wallet's own, the calls from it on are not proven. A request that fails
        proves nothing, and the batch keeps the limits it succeeded at."""
        sender, none = calls[0]["from"].lower(), [False] * len(calls)
        own = [c for c in before if c["from"].lower() == sender]
        try:
            after_all = _results(simulator.simulate_v1(before + calls, block), len(before), done)
            if after_all is None:
                return none
            failed = [r for r in after_all if isinstance(r, Exception)]
            if failed:
                if not all(reasoned(r) for r in failed):
                    self.short()
                return none
            after_own = _results(simulator.simulate_v1(own + calls, block), len(own), done)
        except errors.ProcessorError as error:  # the batch keeps the limits it succeeded at
            log.debug("the gas limits were not fitted: %s", error)
            return none
        if after_own is None:
            return none
        proven, so_far = [], True
        for result in after_own:  # after one that failed, the rest ran on another chain
            so_far = so_far and bool(getattr(result, "gas_used", None))
            proven.append(so_far)
        return proven


def _results(answer: object, replayed: int, done: Callable[[Exception], bool]) -> list | None:
    """The results after `replayed` replayed calls, or None where the request failed or a
    replayed call failed other than as `done` (mined already)."""
    if not isinstance(answer, list) or any(
        isinstance(r, Exception) and not done(r) for r in answer[:replayed]
    ):
        return None
    return answer[replayed:]
