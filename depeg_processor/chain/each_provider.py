"""What each provider of CHAIN_RPC_URL says when asked directly: its chain id, its head and
how long it took, and (for check-config) whether it offers `eth_simulateV1` and
`eth_getBlockReceipts`. For the operator commands; the running service learns the same from
its calls (`health`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from .. import errors
from .rpc import NodeClient
from .simulation import Simulator
from .urls import provider_name


@dataclasses.dataclass(frozen=True)
class ProviderReport:
    """One provider, as it answered just now."""

    index: int
    name: str  # "#index scheme://host"
    chain_id: int | None = None
    head: int | None = None
    latency: float | None = None  # s, of the chain id and head in one request
    errors: int = 0  # calls that failed
    error: str | None = None  # the first failure
    simulates: bool | None = None  # offers eth_simulateV1 (None: not asked)
    block_receipts: bool | None = None  # offers eth_getBlockReceipts (None: not asked)


def ask_each_provider(
    urls: Sequence[str],
    *,
    timeout: float,
    transfer: dict | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[ProviderReport]:
    """Ask each provider; with `transfer` (a plain one, to simulate), its methods too."""
    return [
        _ask_one(index, url, timeout=timeout, transfer=transfer, monotonic=monotonic)
        for index, url in enumerate(urls)
    ]


def _ask_one(
    index: int,
    url: str,
    *,
    timeout: float,
    transfer: dict | None,
    monotonic: Callable[[], float],
) -> ProviderReport:
    name = provider_name(index, url)
    node = NodeClient(url=url, timeout=timeout, patience=0.0, name=name)
    started = monotonic()
    try:
        chain_id, head = node.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    except errors.ProcessorError as error:
        return ProviderReport(index=index, name=name, errors=1, error=str(error))
    latency = monotonic() - started
    failed = [a for a in (chain_id, head) if isinstance(a, Exception)]
    report = ProviderReport(
        index=index,
        name=name,
        chain_id=None if isinstance(chain_id, Exception) else int(chain_id, 16),
        head=None if isinstance(head, Exception) else int(head, 16),
        latency=latency,
        errors=len(failed),
        error=str(failed[0]) if failed else None,
    )
    if transfer is None:
        return report
    return dataclasses.replace(
        report,
        simulates=_answers(lambda: Simulator(chain=node).simulate_v1([transfer], "pending")),
        block_receipts=_answers(lambda: node.request("eth_getBlockReceipts", ["latest"])),
    )


def _answers(ask: Callable[[], object]) -> bool:
    try:
        ask()
    except errors.ProcessorError:
        return False
    return True


def blocks_behind(reports: Sequence[ProviderReport]) -> dict[int, int]:
    """Blocks each provider that answered is behind the best head among them."""
    best = max((r.head for r in reports if r.head is not None), default=None)
    return {r.index: best - r.head for r in reports if r.head is not None and best is not None}
