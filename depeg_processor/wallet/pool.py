"""The pool of wallets replicas send from, and where each wallet keeps its state in Redis.

`PROCESSOR_WALLETS=N` makes the pool the first N accounts of the mnemonic (m/44'/60'/0'/0/i). A
wallet is the unit of sending: its lease, nonces, write-ahead records, in-flight set and spend
ledger live under its own prefix, so replicas on different wallets never touch each other's.
The first wallet keeps the key names a single-wallet processor always used, so a single-wallet
deployment upgrades without moving any data; what belongs to an application whichever wallet
sends it (the done marker, the owner) stays under the stream's own prefix.
"""

from __future__ import annotations

import dataclasses

from .. import keys
from ..chain.signing import LocalKey
from ..hdkeys import wallet_keys


def derivation_path(index: int) -> str:
    return f"m/44'/60'/0'/0/{index}"


@dataclasses.dataclass(frozen=True)
class Member:
    """One wallet of the pool and the names of what it owns."""

    index: int
    address: str
    stream: str
    base_consumer: str

    @property
    def prefix(self) -> str:
        """Records (`<prefix>:tx:<entityId>`), in-flight set (`<prefix>:inflight`) and spend
        ledger (`<prefix>:spent`) of this wallet."""
        return keys.wallet_prefix(self.stream, self.index, self.address)

    @property
    def lease_key(self) -> str:
        return keys.lease_key(self.stream, self.address)

    @property
    def consumer(self) -> str:
        """The consumer-group name of whoever sends from this wallet: unique per wallet, and
        the configured name itself for the first one."""
        if self.index == 0:
            return self.base_consumer
        return f"{self.base_consumer}:{self.address}"


def derive_accounts(mnemonic: str, count: int) -> list[LocalKey]:
    """The first `count` accounts of the mnemonic (`derivation_path`), the pool's wallets in
    order (`hdkeys`: without eth-account, which weighs on the start)."""
    return [LocalKey(key) for key in wallet_keys(mnemonic, count)]


def pool(accounts: list, *, stream: str, consumer: str) -> list[Member]:
    return [
        Member(index=i, address=account.address, stream=stream, base_consumer=consumer)
        for i, account in enumerate(accounts)
    ]
