"""A private relay (CHAIN_SEND_URL): where every raw transaction goes, and nothing else.

A send-only endpoint such as Flashbots Protect or MEV Blocker's no-revert one keeps a
transaction out of the public pool and includes it only where it succeeds, so nobody can see
it coming and make it revert on the processor's gas (issue 21). That holds only if the bytes
go to the relay alone: one copy sent to a public provider hands the transaction back to anyone
watching the pool. So `Relayed` splits every call: `eth_sendRawTransaction` to the relay,
every read to the providers of CHAIN_RPC_URL (a relay answers few reads, and knows nothing of
the chain a decision rests on). Nothing that holds the client knows; the wallet only learns
that a transaction the relay holds is unknown to every public node until it is mined
(`wallet/relayed.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .. import errors
from .calls import ChainClient
from .rpc import NodeClient
from .urls import redact

SEND = "eth_sendRawTransaction"


def relay_name(url: str) -> str:
    """How the relay is named wherever it is shown: never its path or query (a key)."""
    return f"relay {redact(url)}"


class Relayed(ChainClient):
    """The providers (`reads`) for every read, the relay (`sends`) for every raw transaction."""

    def __init__(self, reads: ChainClient, sends: NodeClient) -> None:
        self.reads = reads
        self.sends = sends

    def request(self, method: str, params: Sequence[Any]) -> Any:
        [result] = self.batch([(method, params)])
        if isinstance(result, errors.ProcessorError):
            raise result
        return result

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Each call's result in call order: raw transactions answered by the relay, the
        rest by the providers (NodeUnavailable from either is raised, as one node's is)."""
        calls = list(calls)
        sends = [i for i, (method, _params) in enumerate(calls) if method == SEND]
        if not sends:
            return self.reads.batch(calls)
        results: list[Any] = [None] * len(calls)
        reads = [i for i in range(len(calls)) if i not in set(sends)]
        for client, indices in ((self.sends, sends), (self.reads, reads)):
            if indices:
                answered = client.batch([calls[i] for i in indices])
                for i, result in zip(indices, answered):
                    results[i] = result
        return results

    def agree_on_chain_id(self) -> int | None:
        """The providers' chain (the relay is asked by check-config, not at every start: a
        relay may answer nothing but raw transactions)."""
        return self.reads.agree_on_chain_id()

    def probe_idle(self) -> None:
        self.reads.probe_idle()

    def close(self) -> None:
        self.reads.close()
        self.sends.close()
