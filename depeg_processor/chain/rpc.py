"""One node, over JSON-RPC: a thin client whose errors are sorted in one place.

Requests go over a kept-alive `requests` session per thread, so the client sees each HTTP
status and header (a hosted provider's 429 and Retry-After, a refused batch). Every RPC error
is turned by :func:`depeg_processor.chain.classify.classify` into a permanent or a transient
error of :mod:`depeg_processor.errors`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import requests

from .. import errors
from .calls import ChainClient
from .classify import classify, error_of, retry_after

log = logging.getLogger(__package__)  # the logger the chain's lines have always come from

FIRST_BACKOFF = 0.25  # s, doubling per refusal of the same call when no Retry-After is given
MAX_BACKOFF = 2.0  # s, the longest pause between two tries
PATIENCE = 5.0  # s a call waits on rate limits in all before it raises RateLimited (well
# within the loop's heartbeat and the lease's TTL)
MAX_RETRY_AFTER = 60.0  # s, the most of a Retry-After that is believed
DEFAULT_MAX_BATCH = 100


class NodeClient(ChainClient):
    """The client of one node: JSON-RPC calls, each returning plain Python values.

    One kept-alive HTTP session per thread. A hosted provider's limits are handled here, out
    of the callers' sight: a rate limit (HTTP 429, error -32005) is waited out (Retry-After,
    else a capped exponential backoff; at most PATIENCE seconds a call, then RateLimited); a
    batch is cut into chunks of at most `max_batch` calls, a chunk the provider refuses is
    halved and the smaller size kept, and a provider that refuses even two calls in a batch
    gets every call on its own from then on.

    What the service owns is handed in at construction: the batch cap of its settings, its
    stop-aware `wait` (True when stopping, which ends a rate-limit wait) and `on_rate_limit`,
    the shared state's rate-limit fact. The defaults (100 calls, a plain sleep, nobody told)
    suit a one-off command such as check-config; the service hands in its clock's
    `monotonic` too. One of several providers (`Providers`) is built with no `patience`, so
    a rate limit hands the call to the next provider at once, and with the `name` its lines
    call it by (never its URL).
    """

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_error: Callable[[Exception], None] = lambda error: None,
        on_rate_limit: Callable[[str | None], None] = lambda reason: None,
        wait: Callable[[float], bool | None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        patience: float | None = None,
        name: str = "the node",
    ) -> None:
        self._url = url
        self._patience = patience  # None: PATIENCE
        self.name = name
        self._timeout = timeout
        self._on_error = on_error
        self._on_rate_limit = on_rate_limit
        self._wait = wait
        self._monotonic = monotonic
        self._local = threading.local()
        self._lock = threading.Lock()
        self.max_batch = max_batch  # lowered when the provider refuses a batch
        self.batches = True  # False once the provider refused batches of two
        self._resume_at = 0.0  # no request before this (monotonic): the last Retry-After
        self._limited: str | None = None

    @property
    def patience(self) -> float:
        """Seconds a call waits on rate limits in all before it raises RateLimited."""
        return PATIENCE if self._patience is None else self._patience

    @property
    def resume_at(self) -> float:
        """No request before this (monotonic): the last Retry-After or backoff."""
        with self._lock:
            return self._resume_at

    def _failed(self, error: errors.ProcessorError) -> errors.ProcessorError:
        self._on_error(error)
        return error

    def request(self, method: str, params: Sequence[Any]) -> Any:
        [result] = self._call_all([(method, params)])
        if isinstance(result, errors.ProcessorError):
            raise result
        return result

    def agree_on_chain_id(self) -> None:
        """One node serves one chain: nothing to compare, nothing asked (`chain_id` asks)."""

    def probe_idle(self) -> None:
        """Nothing to probe: the one node's health is known from the calls the work makes."""

    def close(self) -> None:
        """Nothing runs beside the calls: each thread's session ends with its thread."""

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls, as few HTTP requests as the provider allows; each result, in call
        order, is a value or an error instance. Raises NodeUnavailable (RateLimited when
        patience ran out) if a request got no answer."""
        calls = list(calls)
        results: list[Any] = []
        while len(results) < len(calls):
            size = self.max_batch if self.batches else 1
            chunk = calls[len(results) : len(results) + size]
            try:
                results += self._call_all(chunk)
            except errors.BatchRefused as refusal:
                self._shrink(len(chunk), refusal)
        return results

    def _shrink(self, refused: int, why: errors.BatchRefused) -> None:
        with self._lock:
            was = self.max_batch if self.batches else 1
            if refused <= 2:
                self.batches = False
            else:
                self.max_batch = min(self.max_batch, (refused + 1) // 2)
            now = self.max_batch if self.batches else 1
        if not self.batches and was > 1:
            log.warning("%s refuses JSON-RPC batches (%s); calls go one by one", self.name, why)
        elif now < was:
            log.warning(
                "%s refused a batch of %s calls (%s); batches of at most %s from now on",
                self.name,
                refused,
                why,
                now,
            )

    # -- one request, rate limits waited out -----------------------------------------------
    def _call_all(self, calls: list[tuple[str, Sequence[Any]]]) -> list[Any]:
        """The calls in one HTTP request (a batch if more than one); members the node refuses
        for the rate limit are asked again after a pause, until patience runs out."""
        deadline = self._monotonic() + self.patience
        results: list[Any] = [None] * len(calls)
        todo, tries = list(range(len(calls))), 0
        while todo:
            members = self._post_calls([calls[i] for i in todo], deadline)
            limited = []
            for i, member in zip(todo, members):
                if "error" not in member:
                    results[i] = member.get("result")
                    continue
                results[i] = error = self._failed(classify(error_of(member)))
                if isinstance(error, errors.RateLimited):
                    limited.append(i)
            if not limited:
                self._set_limited(None)
                return results
            try:
                self._pause(str(results[limited[0]]), None, tries, deadline)
            except errors.RateLimited:
                return results  # the refused members keep their RateLimited error
            todo, tries = limited, tries + 1
        return results

    def _post_calls(self, calls: list[tuple[str, Sequence[Any]]], deadline: float) -> list[dict]:
        """One POST (an object for one call, an array for more); the answer's members in call
        order. Whole-request rate limits are waited out here; a refused batch raises
        BatchRefused."""
        single = len(calls) == 1
        what = calls[0][0] if single else f"batch of {len(calls)}"
        members = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        tries = 0
        while True:
            self._wait_turn(deadline)
            response = self._post(members[0] if single else members, what)
            if response.status_code == 429:
                self._failed(errors.RateLimited(f"HTTP 429 ({what})"))
                self._pause("HTTP 429", retry_after(response), tries, deadline)
                tries += 1
                continue
            try:
                answer = response.json()
            except ValueError:
                answer = None
            status, ok = response.status_code, response.status_code < 300
            if ok and single and isinstance(answer, dict):
                return [answer]
            if ok and isinstance(answer, list) and _answers_each(answer, len(calls)):
                return sorted(answer, key=lambda member: member["id"])
            error = classify(error_of(answer)) if answer is not None else None
            if isinstance(error, errors.RateLimited):
                self._failed(error)
                self._pause(str(error), retry_after(response), tries, deadline)
                tries += 1
                continue
            if not single and (status in (400, 413) or (ok and answer is not None)):
                raise errors.BatchRefused(f"HTTP {status}: {error}" if error else f"HTTP {status}")
            raise self._failed(
                errors.NodeUnavailable(
                    f"node answered HTTP {status} without a JSON-RPC answer ({what})"
                )
            )

    def _post(self, payload: object, what: str) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Content-Type"] = "application/json"
        try:
            return session.post(self._url, data=json.dumps(payload), timeout=self._timeout)
        except (requests.RequestException, OSError) as error:
            raise self._failed(
                errors.NodeUnavailable(f"node unreachable ({what}): {type(error).__name__}")
            ) from None

    def _pause(self, reason: str, retry_after: float | None, tries: int, deadline: float) -> None:
        """The node refused for its rate limit: no request (from any thread) before its
        Retry-After, else before a backoff doubling with each try; then wait for the turn."""
        if retry_after is None:
            delay = min(FIRST_BACKOFF * 2**tries, MAX_BACKOFF)
        else:  # one beyond PATIENCE makes the calls until then give up at once
            delay = min(max(retry_after, FIRST_BACKOFF), MAX_RETRY_AFTER)
        with self._lock:
            self._resume_at = max(self._resume_at, self._monotonic() + delay)
        self._set_limited(f"{reason}, retrying in {delay:g}s")
        self._wait_turn(deadline)

    def _wait_turn(self, deadline: float) -> None:
        """Wait until the last rate limit has passed; RateLimited if that is past `deadline`
        (or the service is stopping)."""
        now = self._monotonic()
        with self._lock:
            delay, reason = self._resume_at - now, self._limited
        if delay <= 0:
            return
        if now + delay > deadline + 1e-9:
            raise errors.RateLimited(
                f"rate limited by the node ({reason}); gave up after {self.patience:g}s"
            )
        if self._wait(delay):
            raise errors.RateLimited(f"rate limited by the node ({reason}); stopping")

    def _set_limited(self, reason: str | None) -> None:
        """Tell the shared state while the node rate-limits us (and when it stopped)."""
        with self._lock:
            before, self._limited = self._limited, reason
            if before is None and reason is None:
                return
            self._on_rate_limit(reason)
        if before is None:
            log.warning("rate limited by %s: %s", self.name, reason)
        elif reason is None:
            log.info("no longer rate limited by %s", self.name)


def _answers_each(answer: list, count: int) -> bool:
    """The array answers each of `count` calls (ids 0..count-1) once."""
    ids = [member.get("id") for member in answer if isinstance(member, dict)]
    return (
        len(ids) == len(answer) == count
        and all(type(i) is int for i in ids)
        and set(ids) == set(range(count))
    )
