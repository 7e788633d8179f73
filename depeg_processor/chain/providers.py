"""Several JSON-RPC providers of one chain, used as one node.

`CHAIN_RPC_URL` may list several URLs: the first is preferred, the rest are fallbacks. The set
is a `ChainClient` as one node's `NodeClient` is, so nothing else knows there are several:

- A read goes to the best provider (`health.preference`: usable, keeping up with the best head
  seen, fast, earliest in the list). One that does not answer, or rate-limits, is left for the
  next within the same call (reads are safe to repeat); it gets work again once a probe has an
  answer after a backoff (`probe_idle`, at most one cheap call per PROBE_INTERVAL and provider).
  The preferred one takes the work back as soon as it is usable, keeps up and is fast.
- A read a decision rests on (receipts, transactions by hash, transaction counts, blocks by
  number) is answered only by a provider at or beyond the best head seen and the block asked
  about: one whose head is not known to be there gets `eth_blockNumber` in the same batch, and
  its answers are thrown away if it is behind. So a lagging provider never makes a mined
  transaction look dropped, a nonce look unused, or a block look reorganised.
- `eth_sendRawTransaction` goes to every usable provider at once; the answers are merged
  (`broadcast.merge`).

No URL is ever shown: each provider is named `#index scheme://host` (`urls.provider_name`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from .. import errors
from ..errors import ConfigError
from .broadcast import Answers, merge, unanswered
from .calls import ChainClient
from .freshness import heads_answered, required_block
from .health import Health, ProviderView, none_answered, preference
from .rpc import PATIENCE, NodeClient

log = logging.getLogger(__name__)

SEND = "eth_sendRawTransaction"
BROADCAST_GRACE = 1.0  # s the other providers have to answer once one answered a batch
Call = tuple[str, Sequence[Any]]


class Providers(ChainClient):
    """One chain's providers, in the order of preference."""

    def __init__(
        self,
        nodes: Sequence[NodeClient],
        *,
        wait: Callable[[float], bool | None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_rate_limit: Callable[[str | None], None] = lambda reason: None,
        on_change: Callable[[list[ProviderView]], None] = lambda views: None,
    ) -> None:
        self._nodes = list(nodes)
        self._health = [
            Health(index=i, name=node.name, monotonic=monotonic)
            for i, node in enumerate(self._nodes)
        ]
        self._wait, self._monotonic = wait, monotonic
        self._on_rate_limit, self._on_change = on_rate_limit, on_change
        self._lock = threading.Lock()
        self._limited = False  # every provider rate-limited us (told to the shared state)
        self._chain_id: int | None = None  # agreed at start (`agree_on_chain_id`)
        self._checked: set[int] = set()  # the providers whose chain id was seen
        self._pool = ThreadPoolExecutor(
            max_workers=2 * len(self._nodes), thread_name_prefix="broadcast"
        )

    @property
    def max_batch(self) -> int:
        return self._nodes[0].max_batch

    @property
    def batches(self) -> bool:
        return self._nodes[0].batches

    def views(self) -> list[ProviderView]:
        return [health.view() for health in self._health]

    def best_head(self) -> int | None:
        heads = [v.head for v in self.on_chain() if v.head is not None]
        return max(heads, default=None)

    def on_chain(self) -> list[ProviderView]:
        """The providers known to serve this chain (every one, before it is known)."""
        known = self._chain_id is not None
        return [v for v in self.views() if v.on_chain and (not known or v.index in self._checked)]

    # -- the calls ------------------------------------------------------------------------------
    def request(self, method: str, params: Sequence[Any]) -> Any:
        [result] = self.batch([(method, params)])
        if isinstance(result, errors.ProcessorError):
            raise result
        return result

    def batch(self, calls: Iterable[Call]) -> list[Any]:
        """As `NodeClient.batch`: raw transactions broadcast, everything else read from the best
        provider that can answer it. Raises NodeUnavailable when no provider answered."""
        calls = list(calls)
        sends = [i for i, (method, _params) in enumerate(calls) if method == SEND]
        if not sends:
            return self._patiently(lambda: self._read(calls))
        if len(sends) == len(calls):
            return self._patiently(lambda: self._broadcast(calls))
        reads = [i for i in range(len(calls)) if i not in set(sends)]
        results: list[Any] = [None] * len(calls)
        for indices in (sends, reads):
            for i, result in zip(indices, self.batch([calls[i] for i in indices])):
                results[i] = result
        return results

    def _patiently(self, attempt: Callable[[], list[Any]]) -> list[Any]:
        """Only when every provider rate-limits us is a call held up: until the first of
        them takes calls again, at most PATIENCE seconds a call (as with one node)."""
        deadline = self._monotonic() + PATIENCE
        try:
            while True:
                try:
                    results = attempt()
                    self._set_limited(None)
                    return results
                except errors.RateLimited as error:
                    self._set_limited(str(error))
                    resume = min(node.resume_at for node in self._nodes)
                    delay = max(resume - self._monotonic(), 0.05)
                    if self._monotonic() + delay > deadline or self._wait(delay):
                        raise
        finally:
            self._on_change(self.views())

    # -- reads -------------------------------------------------------------------------------------
    def _read(self, calls: list[Call], skip: frozenset[int] = frozenset()) -> list[Any]:
        need = required_block(calls, self.best_head())
        failures: list[tuple[str, Exception]] = []
        for health, node in self._order(skip):
            guard = need is not None and (health.head is None or health.head < need)
            # the head first: one that moves on during the batch has answered at it or later
            asked = [("eth_blockNumber", []), *calls] if guard else calls
            results = self._ask(health, node, asked)
            if isinstance(results, Exception):
                failures.append((health.name, results))
                continue
            if guard:
                number = results.pop(0)
                if isinstance(number, Exception) or int(number, 16) < need:
                    failures.append((health.name, errors.NodeBehind(f"behind block {need}")))
                    continue
            limited = [i for i, r in enumerate(results) if isinstance(r, errors.RateLimited)]
            if limited:  # the members it refused for its rate limit, elsewhere
                health.limited(str(results[limited[0]]), retry_at=node.resume_at)
                try:
                    again = self._read([calls[i] for i in limited], skip | {health.index})
                except errors.NodeUnavailable:
                    again = [results[i] for i in limited]
                for i, result in zip(limited, again):
                    results[i] = result
            return results
        raise none_answered(failures, what=calls[0][0] if len(calls) == 1 else "batch")

    def _order(self, skip: frozenset[int]) -> list[tuple[Health, NodeClient]]:
        """The providers to try, best first; those not usable only after every usable one.
        Once the chain is known, one whose chain id was never seen (down at start) gets no
        work until a probe has checked it."""
        views = sorted(self.on_chain(), key=preference)
        return [(self._health[v.index], self._nodes[v.index]) for v in views if v.index not in skip]

    def _ask(self, health: Health, node: NodeClient, calls: list[Call]) -> list[Any] | Exception:
        """One provider's answers (its health told), or why it gave none."""
        started = self._monotonic()
        try:
            results = node.batch(calls)
        except errors.RateLimited as error:
            health.limited(str(error), retry_at=node.resume_at)
            return error
        except errors.NodeUnavailable as error:
            if health.view().usable:
                log.warning("provider %s: %s; calls go to the next", health.name, error)
            health.failed(str(error))
            return error
        health.answered(self._monotonic() - started)
        self._learn_heads(health, calls, results)
        return results

    def _learn_heads(self, health: Health, calls: list[Call], results: list[Any]) -> None:
        heads = heads_answered(calls, results)
        if heads:
            head = max(heads)
            health.saw_head(head, max(head, self.best_head() or 0))

    # -- broadcasts --------------------------------------------------------------------------------
    def _broadcast(self, calls: list[Call]) -> list[Any]:
        """To every usable provider at once that is not slow (every one, when none is); once
        one answered (whatever it said), the others get BROADCAST_GRACE more (one that
        hangs costs a send, or a resend a node knows already, no more)."""
        views = self.on_chain()
        targets = [v for v in views if v.usable] or views
        targets = sorted([v for v in targets if not v.slow] or targets, key=preference)
        futures: dict[Future, int] = {
            self._pool.submit(self._ask, self._health[v.index], self._nodes[v.index], calls): n
            for n, v in enumerate(targets)
        }
        answered: dict[int, Answers] = {}
        pending, until = set(futures), None
        while pending:
            timeout = None if until is None else max(0.0, until - self._monotonic())
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not done:
                break  # the grace has passed: what the rest say is not waited for
            for future in done:
                result = future.result()
                answered[futures[future]] = (
                    result if isinstance(result, list) else unanswered(result)
                )
                if until is None and isinstance(result, list):  # one provider answered
                    until = self._monotonic() + BROADCAST_GRACE
        answers = [answered[n] for n in sorted(answered)]
        if all(isinstance(a, errors.RateLimited) for a in answers):
            raise answers[0]  # every provider refused for its rate limit: waited out
        return merge(answers, len(calls))

    # -- the chain id, and probes ------------------------------------------------------------------
    def agree_on_chain_id(self) -> int | None:
        """Ask every provider its chain id (and head); ConfigError if two differ. Once one
        has answered the chain id is settled and later calls ask nothing: providers that did
        not answer are checked when they first answer a probe. None while none answered."""
        if self._chain_id is not None:
            return self._chain_id
        ids = {}
        for health, node in zip(self._health, self._nodes):
            answers = self._ask(health, node, [("eth_chainId", []), ("eth_blockNumber", [])])
            if isinstance(answers, list) and isinstance(answers[0], str):
                ids[health.name] = int(answers[0], 16)
                self._checked.add(health.index)
        best = self.best_head()
        for health in self._health:  # asked together: each lag against the best of them
            if health.head is not None and best is not None:
                health.saw_head(health.head, best)
        self._on_change(self.views())
        if len(set(ids.values())) > 1:
            raise ConfigError(
                "CHAIN_RPC_URL",
                "the providers serve different chains: "
                + ", ".join(f"{name} chain id {chain_id}" for name, chain_id in ids.items()),
            )
        self._chain_id = next(iter(ids.values()), None)
        return self._chain_id

    def probe_idle(self) -> None:
        """Ask each idle provider (and each past its backoff) its head: one cheap call, the
        chain id too until it was seen once."""
        for health, node in zip(self._health, self._nodes):
            if not health.probe_due():
                continue
            calls: list[Call] = [("eth_blockNumber", [])]
            if health.index not in self._checked:
                calls.append(("eth_chainId", []))
            was = health.view().usable
            answers = self._ask(health, node, calls)
            if isinstance(answers, list) and len(answers) == 2 and isinstance(answers[1], str):
                self._check_chain(health, int(answers[1], 16))
            if isinstance(answers, list) and not was and health.view().usable:
                log.info("provider %s answers again", health.name)
        self._on_change(self.views())

    def _check_chain(self, health: Health, chain_id: int) -> None:
        self._checked.add(health.index)
        if self._chain_id is None:
            self._chain_id = chain_id
        elif chain_id != self._chain_id:
            why = f"serves chain id {chain_id}, not {self._chain_id}"
            health.wrong_chain(why)
            log.error("provider %s %s; it is not used", health.name, why)

    def _set_limited(self, reason: str | None) -> None:
        with self._lock:
            before, self._limited = self._limited, reason is not None
        if before or reason is not None:
            self._on_rate_limit(reason)

    def close(self) -> None:
        """Stop the broadcast threads; sends still queued are not made."""
        self._pool.shutdown(wait=False, cancel_futures=True)
