"""The chain client for CHAIN_RPC_URL: a `NodeClient` for one URL (exactly as before there
could be several), a `Providers` set over one `NodeClient` each for a list; with CHAIN_SEND_URL,
either behind a `Relayed` that sends every raw transaction to the relay alone. Each is a
`ChainClient`: nothing that holds one asks which. `Providers`, with what only several
providers need (their health, the answers' freshness, the broadcast to each), is imported
only when a list is given: a start with one URL leaves those modules out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .calls import ChainClient
from .relay import Relayed, relay_name
from .rpc import DEFAULT_MAX_BATCH, NodeClient
from .urls import provider_name

if TYPE_CHECKING:
    from .health import ProviderView


def build_chain_client(
    urls: Sequence[str],
    *,
    timeout: float,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_error: Callable[[Exception], None] = lambda error: None,
    on_rate_limit: Callable[[str | None], None] = lambda reason: None,
    on_change: Callable[[list[ProviderView]], None] = lambda views: None,
    wait: Callable[[float], bool | None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    send_url: str | None = None,
) -> ChainClient:
    """The client of the providers at `urls`, the first preferred. One of several is built
    without patience for rate limits: the set moves the call to the next instead. `on_change`
    hears how each of several is doing; one node has nothing to tell. With `send_url` (a
    private relay) raw transactions go there and nowhere else."""
    reads = _reads(
        urls,
        timeout=timeout,
        max_batch=max_batch,
        on_error=on_error,
        on_rate_limit=on_rate_limit,
        on_change=on_change,
        wait=wait,
        monotonic=monotonic,
    )
    if send_url is None:
        return reads
    relay = NodeClient(
        url=send_url,
        timeout=timeout,
        max_batch=max_batch,
        on_error=on_error,
        on_rate_limit=on_rate_limit,
        wait=wait,
        monotonic=monotonic,
        name=relay_name(send_url),
    )
    return Relayed(reads, relay)


def _reads(
    urls: Sequence[str],
    *,
    timeout: float,
    max_batch: int,
    on_error: Callable[[Exception], None],
    on_rate_limit: Callable[[str | None], None],
    on_change: Callable[[list[ProviderView]], None],
    wait: Callable[[float], bool | None],
    monotonic: Callable[[], float],
) -> ChainClient:
    if len(urls) == 1:
        return NodeClient(
            url=urls[0],
            timeout=timeout,
            max_batch=max_batch,
            on_error=on_error,
            on_rate_limit=on_rate_limit,
            wait=wait,
            monotonic=monotonic,
        )
    from .providers import Providers  # several providers only (see above)

    nodes = [
        NodeClient(
            url=url,
            timeout=timeout,
            max_batch=max_batch,
            on_error=on_error,
            wait=wait,
            monotonic=monotonic,
            patience=0.0,
            name=provider_name(index, url),
        )
        for index, url in enumerate(urls)
    ]
    return Providers(
        nodes, wait=wait, monotonic=monotonic, on_rate_limit=on_rate_limit, on_change=on_change
    )
