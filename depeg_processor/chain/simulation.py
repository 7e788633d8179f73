"""Simulating a batch of calls against the pending state, in one request where the node can.

A node that offers `eth_simulateV1` runs a whole batch in one simulated block; one that does
not (or whose provider refuses it) gets a batch of `eth_call`. Whether the node offers it is
learned here, by the :class:`Simulator` that asks, and is kept out of the JSON-RPC client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .. import errors
from .calls import ChainClient
from .classify import ERROR_SELECTOR, classify

log = logging.getLogger(__package__)  # the logger the chain's lines have always come from

SIMULATE_V1_STRIKES = 3  # batches in a row whose eth_simulateV1 failed while eth_call answered
DEFAULT_GAS_CAP = 50_000_000  # geth's and reth's --rpc.gascap, anvil's: for a whole request
LOWEST_GAS_CAP = 3_000_000  # a refusal never teaches a cap below one transaction's worth


class Returned(str):
    """A call's return data, with the gas the simulation says it used (None: an eth_call,
    which does not say)."""

    gas_used: int | None = None

    @classmethod
    def of(cls, data: str, gas_used: int | None) -> Returned:
        returned = cls(data)
        returned.gas_used = gas_used
        return returned


class Simulator:
    """Simulates batches of calls on one node, remembering whether `eth_simulateV1` works.

    One per node client, shared by every sender on it: the node either offers the method or
    not, whichever wallet asks.
    """

    def __init__(self, *, chain: ChainClient, gas_cap: int = DEFAULT_GAS_CAP) -> None:
        self._chain = chain
        self.simulates = True  # False once eth_simulateV1 failed where eth_call answered
        self._strikes = 0  # batches in a row that it did so
        self.gas_cap = gas_cap  # the most gas one eth_simulateV1 may ask; lowered on refusal

    def simulate(
        self,
        calls: Sequence[dict],
        block: str | dict = "pending",
        *,
        before: Sequence[dict] = (),
        done: Callable[[Exception], bool] = lambda error: False,
    ) -> list[Any]:
        """Each call's return data, or its error sorted as `classify` sorts an eth_call's.

        `before` are run first in the same simulated block, their results dropped: what is
        in flight, replayed so that `calls` see its effects. One that fails as `done` says
        is already in `block` (its effects too); if one fails otherwise, the state `calls`
        see is not the one they will meet: ReplayFailed, and no result. They need
        `eth_simulateV1`: when it fails, `calls` go as `eth_call`s against the pending block
        instead, which holds as much of what is in flight as the node keeps executable.

        Where the node offers `eth_simulateV1`, the calls run one after another in one
        simulated block on top of `block`, in one request: each sees what those before it
        changed, and the node builds the state of `block` once (for "pending" that means
        executing the transaction pool, which some nodes do per call). When that request fails
        as a whole, or the node does not offer it, the calls go again as a batch of `eth_call`,
        each against `block` alone; once that has happened SIMULATE_V1_STRIKES batches in a
        row while `eth_call` answered, `eth_simulateV1` is not asked again. Raises
        NodeUnavailable when `eth_call` gets no answer either (as `ChainClient.batch` does).
        """
        calls, before = list(calls), list(before)
        failure: errors.ProcessorError | None = None
        if self.simulates and calls:
            try:
                results = self.simulate_v1(before + calls, block)
                self._strikes = 0
                failed = [
                    r for r in results[: len(before)] if isinstance(r, Exception) and not done(r)
                ]
                if failed:
                    raise errors.ReplayFailed(
                        f"{len(failed)} of {len(before)} replayed transactions in flight fail "
                        f"at block {block} (first: {failed[0]})"
                    )
                return results[len(before) :]
            except errors.ReplayFailed:
                raise
            except errors.RateLimited:
                raise
            except errors.SimulationTooLarge as error:
                self._over_cap(before + calls, error)
                raise
            except errors.ProcessorError as error:  # an outage too: eth_call tells which
                failure = error
        alone = "pending" if before else block
        results = self._chain.batch([("eth_call", [call, alone]) for call in calls])
        if failure is not None:
            self._simulate_v1_failed(failure)
        return results

    def simulate_v1(self, calls: list[dict], block: str | dict) -> list[Any]:
        """The calls in one `eth_simulateV1` request (see `simulate`); raises the request's
        error, or TransientError for an answer of another shape."""
        simulated: dict[str, Any] = {"calls": calls}
        if all("gas" in call for call in calls):  # room for all of them in the one block
            simulated["blockOverrides"] = {
                "gasLimit": hex(sum(int(call["gas"], 16) for call in calls))
            }
        answer = self._chain.request(
            "eth_simulateV1", [{"blockStateCalls": [simulated], "validation": False}, block]
        )
        block_answer = answer[0] if isinstance(answer, list) and len(answer) == 1 else None
        outcomes = block_answer.get("calls") if isinstance(block_answer, dict) else None
        if not (
            isinstance(outcomes, list)
            and len(outcomes) == len(calls)
            and all(isinstance(outcome, dict) and "status" in outcome for outcome in outcomes)
        ):
            raise errors.TransientError("eth_simulateV1 answered with another shape")
        return [_simulated(outcome) for outcome in outcomes]

    def _over_cap(self, calls: list[dict], error: errors.SimulationTooLarge) -> None:
        """The node refused a request for its simulation gas cap: below what it asked (a
        cap it names in its message, else three quarters of it), never below
        LOWEST_GAS_CAP. Not a strike: the node simulates, only not that much at once."""
        asked = requested_gas(calls)
        named = [int(word) for word in str(error).replace(",", " ").split() if word.isdigit()]
        named = [n for n in named if LOWEST_GAS_CAP <= n < asked]
        learned = max(LOWEST_GAS_CAP, min(named) if named else asked * 3 // 4)
        if learned < self.gas_cap:
            log.info(
                "the node refused a simulation of %s gas (%s); simulating at most %s gas a "
                "request from now on",
                asked,
                error,
                learned,
            )
            self.gas_cap = learned

    def _simulate_v1_failed(self, error: errors.ProcessorError) -> None:
        self._strikes += 1
        if self._strikes < SIMULATE_V1_STRIKES:
            log.info("eth_simulateV1 failed (%s); this batch was simulated with eth_call", error)
            return
        self.simulates = False
        log.warning(
            "eth_simulateV1 failed for %s batches in a row while eth_call answered (last: %s); "
            "each simulation is an eth_call of its own from now on",
            SIMULATE_V1_STRIKES,
            error,
        )


def _simulated(outcome: dict) -> Any:
    """One call's result in an eth_simulateV1 answer: its return data, or its error. Nodes
    differ: geth sends an error object with code 3 and the revert data in its `data`; anvil
    a generic error, with the revert data in `returnData`."""
    if outcome["status"] == "0x1":
        used = outcome.get("gasUsed")
        return Returned.of(
            outcome.get("returnData", "0x"), int(used, 16) if isinstance(used, str) else None
        )
    data = outcome.get("returnData")
    if isinstance(data, str) and data.startswith(ERROR_SELECTOR):
        return classify({"code": 3, "message": "execution reverted", "data": data})
    error = outcome.get("error")
    return classify(error if isinstance(error, dict) else {"message": "the call failed"})


def requested_gas(calls: Sequence[dict]) -> int:
    """The gas one eth_simulateV1 of `calls` asks for: what a node's cap counts."""
    return sum(int(call.get("gas", "0x0"), 16) for call in calls)


def fitting(before: Sequence[dict], calls: Sequence[dict], cap: int) -> int:
    """How many of `calls` (from the first) fit one simulation after `before` under `cap`."""
    room = cap - requested_gas(before)
    fit = 0
    for call in calls:
        room -= requested_gas([call])
        if room < 0:
            break
        fit += 1
    return fit
