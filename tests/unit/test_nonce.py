"""nonce.NonceManager: the wallet's next nonce, owned locally."""

from __future__ import annotations

import pytest

from depeg_processor.errors import NodeUnavailable
from depeg_processor.wallet.nonce import NonceManager


class Sources:
    def __init__(self, chain: int, recorded: int | None) -> None:
        self.chain, self.recorded = chain, recorded
        self.chain_down = False

    def chain_pending(self) -> int:
        if self.chain_down:
            raise NodeUnavailable("node unreachable (eth_getTransactionCount)")
        return self.chain

    def manager(self) -> NonceManager:
        return NonceManager(
            chain_pending=self.chain_pending, highest_recorded=lambda: self.recorded
        )


@pytest.mark.parametrize(
    "chain, recorded, expected",
    [
        (5, None, 5),
        (5, 2, 5),
        (5, 4, 5),
        (5, 8, 9),
        (0, None, 0),
    ],
)
def test_sync_takes_the_larger_of_chain_and_records(chain, recorded, expected) -> None:
    nonces = Sources(chain, recorded).manager()
    assert nonces.sync() == expected
    assert nonces.next == expected


def test_take_before_sync_synchronises_first() -> None:
    nonces = Sources(4, 6).manager()
    assert nonces.take() == 7
    assert nonces.next == 8


def test_take_hands_out_consecutive_nonces() -> None:
    nonces = Sources(5, None).manager()
    nonces.sync()
    assert [nonces.take() for _ in range(3)] == [5, 6, 7]
    assert nonces.next == 8


def test_sync_later_resyncs_on_the_next_take() -> None:
    sources = Sources(5, None)
    nonces = sources.manager()
    nonces.sync()
    nonces.take()
    nonces.take()
    sources.chain, sources.recorded = 6, 6  # nonce 6 was recorded meanwhile
    nonces.sync_later()
    assert nonces.next is None
    assert nonces.take() == 7


def test_resync_moves_forward_after_a_conflict() -> None:
    sources = Sources(5, None)
    nonces = sources.manager()
    nonces.sync()
    nonces.take()
    sources.chain = 9  # another sender used the wallet
    assert nonces.sync() == 9 and nonces.take() == 9


def test_sync_later_while_the_node_is_down_recovers_on_the_next_take() -> None:
    sources = Sources(5, None)
    nonces = sources.manager()
    nonces.sync()
    nonces.take()
    nonces.take()
    sources.chain_down = True
    nonces.sync_later()  # no I/O: cannot fail with the node down
    with pytest.raises(NodeUnavailable):
        nonces.take()  # reports the outage, but does not wedge the manager
    sources.chain_down = False
    assert nonces.take() == 5
