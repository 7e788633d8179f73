"""The pool's nonce check of one wallet's batch (see reconcile), asked of the node while the
batch is read.

Its node calls and the latest block the batch is simulated at (see Preflight.market_calls) go
in one request, sent on a thread of its own as soon as the batch's entries are in hand: the
block then holds what the web app did before them, and the batch's own Redis reads and checks
(its applications, their signatures and holders) go on meanwhile instead of waiting for the
node. Only when the batch is to be submitted are the answers taken: the block handed to the
preflight, then the records read (the node before Redis, as reconcile requires).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import redis

from ..chain.calls import ChainClient
from .reconcile import count_calls, explain
from .records import TxRecords


class MarketReader(Protocol):
    """What the check reads for the batch's simulation (the preflight)."""

    def market_calls(self) -> list[tuple[str, list]]: ...

    def take_market(self, answers: list) -> None: ...

    def forget_market(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Asked:
    """One check under way: the wallets it counts and the node's answers to come."""

    wallets: list[TxRecords]
    counts: int  # how many of the answers are the wallets' counts (the rest: the block's)
    answers: Future


class NonceCheck:
    def __init__(
        self,
        chain: ChainClient,
        client: redis.Redis,
        pool: tuple[TxRecords, ...],
        *,
        market: MarketReader,
    ) -> None:
        self._chain, self._client, self._pool, self._market = chain, client, pool, market
        self._asking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nonce-check")

    def ask(self) -> Asked:
        """Send the check's request now; its answers are taken by `explained`."""
        self._market.forget_market()
        wallets, counts = count_calls(self._pool)
        calls = counts + self._market.market_calls()
        answers: Future = Future()
        if calls:
            answers = self._asking.submit(self._chain.batch, calls)
        else:
            answers.set_result([])
        return Asked(wallets, len(counts), answers)

    def explained(self, asked: Asked) -> str | None:
        """Why the pool may not send now (see reconcile), or None; raises NodeUnavailable
        (or what the request raised) when the node did not say."""
        answers = asked.answers.result()
        self._market.take_market(answers[asked.counts :])
        found = (
            explain(self._client, asked.wallets, answers[: asked.counts]) if asked.counts else []
        )
        return "; ".join(map(str, found)) or None

    def close(self) -> None:
        self._asking.shutdown(wait=True)
