"""With a private relay (CHAIN_SEND_URL): raw transactions go to the relay alone and reads to
the providers (`chain.relay.Relayed`); a transaction the relay holds, which no public node
knows, is sent to the relay again (never looked up as "dropped"), simulated again after
CHAIN_SEND_DROP_BLOCKS, and then sent again at today's fees or set aside with its nonce filled
by a transfer of the wallet to itself; a nonce gap is filled the same way (`wallet/relayed.py`
through the receipt watcher over the fake chain)."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.chain.relay import Relayed, relay_name
from depeg_processor.clock import Clock
from depeg_processor.signer.policy import SigningPolicy
from depeg_processor.wallet.context import WalletConfig
from devnet.rawtx import decode

from .helpers import CHAIN_ID, MESSAGE_HELPER
from .test_lifecycle import ENTITY_ID, NOW, FakeChain, World, signed_call
from .wallet_harness import PRODUCT, build_wallet

DROP_BLOCKS = 5


class Answering:
    """A client that answers each call with `(name, method)` and keeps what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[list[str]] = []

    def batch(self, calls) -> list:
        calls = list(calls)
        self.asked.append([method for method, _params in calls])
        return [(self.name, method) for method, _params in calls]

    def close(self) -> None:
        self.asked.append(["closed"])


def test_raw_transactions_go_to_the_relay_alone_and_reads_never() -> None:
    reads, sends = Answering("providers"), Answering("relay")
    chain = Relayed(reads, sends)
    calls = [
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_sendRawTransaction", ["0x01"]),
        ("eth_call", [{}, "latest"]),
        ("eth_sendRawTransaction", ["0x02"]),
    ]
    assert chain.batch(calls) == [
        ("providers", "eth_getBlockByNumber"),
        ("relay", "eth_sendRawTransaction"),
        ("providers", "eth_call"),
        ("relay", "eth_sendRawTransaction"),
    ]
    assert sends.asked == [["eth_sendRawTransaction"] * 2]
    assert reads.asked == [["eth_getBlockByNumber", "eth_call"]]
    assert chain.request("eth_chainId", []) == ("providers", "eth_chainId")
    assert sends.asked == [["eth_sendRawTransaction"] * 2], "reads never go to the relay"


def test_the_relay_is_named_by_scheme_and_host_only() -> None:
    name = relay_name("https://user:secret@rpc.example.com:8443/fast/KEY123?auth=abc")
    assert name == "relay https://rpc.example.com:8443"


class RelayChain(FakeChain):
    """The fake chain behind a relay: what is sent is held out of the public pool (unknown
    to eth_getTransactionByHash) until the test mines it; `eth_call` answers `call_error`."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    def _answer(self, method: str, params: list) -> object:
        self.methods.append(method)
        if method == "eth_call":
            return self.call_error or "0x"
        answer = super()._answer(method, params)
        if method == "eth_sendRawTransaction":
            self.pool.pop(answer)  # the relay holds it: no public node knows it
        return answer


class RelayWorld(World):
    def __init__(self, client, policy: SigningPolicy | None = None) -> None:  # with a relay
        self.redis = client
        self.now, self.mono = [NOW], [100.0]
        self.chain = RelayChain()
        self.wallet = build_wallet(
            client,
            chain=self.chain,
            clock=Clock(now=lambda: self.now[0], monotonic=lambda: self.mono[0]),
            config=WalletConfig(
                chain_id=CHAIN_ID,
                product=PRODUCT,
                min_confirmations=2,
                poll_interval=1.0,
                stuck_blocks=2,
                stuck_seconds=3600.0,
                relay_drop_blocks=DROP_BLOCKS,
            ),
            policy=policy,
        )
        self.records, self.queue = self.wallet.records, self.wallet.queue
        assert self.wallet.keeper.run_once(), "this process holds the wallet's lease"

    def blocks(self, count: int) -> None:
        """`count` empty blocks, a watcher round after each."""
        for _ in range(count):
            self.chain.mine()
            self.round()


@pytest.fixture
def world(fake_redis) -> RelayWorld:
    return RelayWorld(fake_redis)


def test_a_held_transaction_is_sent_to_the_relay_again_never_looked_up(world) -> None:
    record = world.send(pending=False)
    world.round()
    world.blocks(DROP_BLOCKS - 1)
    assert world.chain.sent == [record.raw, record.raw], "its bytes, every TX_STUCK_BLOCKS"
    assert "eth_getTransactionByHash" not in world.chain.methods
    assert "eth_call" not in world.chain.methods, "not simulated again before the drop"
    assert world.records.get(ENTITY_ID) == record


def test_one_that_would_succeed_after_the_drop_is_sent_again_at_todays_fees(world) -> None:
    record = world.send(pending=False)
    world.round()
    world.blocks(DROP_BLOCKS)
    assert world.chain.methods.count("eth_call") == 1
    again = world.records.get(ENTITY_ID)
    assert again.tx_hash != record.tx_hash and again.nonce == record.nonce
    assert again.max_fee_per_gas > record.max_fee_per_gas
    assert world.chain.sent[-1] == again.raw
    assert world.redis.hget(f"PendingApplication:{ENTITY_ID}", "transactionHash") == again.tx_hash
    world.chain.mine(again.tx_hash)
    world.chain.mine()
    assert world.round() == 1, "confirmed"


def test_one_that_fails_after_the_drop_is_set_aside_and_its_nonce_filled(world) -> None:
    record = world.send(pending=False, data=signed_call()[0])
    world.round()
    world.chain.call_error = errors.PermanentError("ERROR:DP-015:ALLOWANCE_TOO_LOW")
    world.blocks(DROP_BLOCKS)
    [(_id, letter)] = world.queue.dead_letters.list()
    assert letter["kind"] == "not_included_by_relay" and letter["entityId"] == ENTITY_ID
    assert record.tx_hash in letter["reason"] and "ERROR:DP-015" in letter["reason"]
    assert world.records.get(ENTITY_ID) is None and len(world.wallet.in_flight) == 0
    filler = decode(world.chain.sent[-1])
    assert filler.hash in letter["reason"]
    assert (filler.nonce, filler.sender, filler.call["to"].lower()) == (
        record.nonce,
        world.wallet.address,
        world.wallet.address.lower(),
    )
    assert (filler.call["value"], filler.call["data"], filler.call["gas"]) == (
        "0x0",
        "0x",
        "0x5208",
    )
    [state] = world.wallet.records.holders.states([record.holder])
    assert state.hold is not None and state.hold.tx_hash == record.tx_hash, "held, as for a revert"
    assert "not included by the private relay" in state.hold.describe()


def test_a_paused_product_after_the_drop_sends_the_application_back(world) -> None:
    world.send(pending=False)
    world.round()
    world.chain.call_error = errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE")
    world.blocks(DROP_BLOCKS)
    assert world.queue.dead_letters.list() == []
    assert world.records.get(ENTITY_ID) is None
    assert decode(world.chain.sent[-1]).call["to"].lower() == world.wallet.address.lower()
    assert [f["entityId"] for _i, f in world.redis.xrange("application:signatures")] == [ENTITY_ID]


def test_a_nonce_nothing_in_flight_uses_is_filled(world) -> None:
    """A record at nonce 1 while the chain's next is 0 (the filler of 0 lost on the way)."""
    record = world.send(pending=False)
    world.records.put(record.__class__(**{**record.__dict__, "nonce": 1}))
    world.round()
    world.blocks(2)  # the gap is stale after TX_STUCK_BLOCKS
    fillers = [decode(raw) for raw in world.chain.sent if raw != record.raw]
    assert fillers and all(f.nonce == 0 and f.call["data"] == "0x" for f in fillers)


def test_the_signing_policy_lets_the_filler_through(fake_redis) -> None:
    """The wallet's keys sign nothing but the product call and this filler (signer/policy)."""
    refused = []
    policy = SigningPolicy(
        chain_id=CHAIN_ID,
        product=PRODUCT,
        verifying_contract=MESSAGE_HELPER,
        max_gas=3_000_000,
        max_fee_per_gas=10**12,
        on_refused=lambda: refused.append(1),
    )
    world = RelayWorld(fake_redis, policy=policy)
    record = world.send(pending=False, data=signed_call()[0])
    world.round()
    world.chain.call_error = errors.PermanentError("ERROR:DP-015:ALLOWANCE_TOO_LOW")
    world.blocks(DROP_BLOCKS)
    filler = decode(world.chain.sent[-1])
    assert filler.nonce == record.nonce and filler.call["data"] == "0x" and refused == []
