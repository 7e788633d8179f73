"""The private-relay emulator (devnet.relay) against a real anvil: a transaction that would
revert is never mined and waits, costing nothing; one that succeeds is included; a sender's
later nonce waits behind its held one; what waits too long is dropped; and a public transaction
that reaches anvil between the relay's simulation and its block cannot make the relay's
transaction revert on chain. Blocks are made by the test through `relay.mine()`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from devnet.gif import Transactor
from devnet.nodes import TEST_MNEMONIC, Anvil
from devnet.relay import Relay

pytestmark = pytest.mark.integration
Account.enable_unaudited_hdwallet_features()
DEPLOYER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/8")
GWEI = 10**9


class Token:
    """A test token (the depeg package's USD2: the deployer holds the supply) and signed
    transactions of it, sent wherever the test says."""

    def __init__(self, anvil: Anvil) -> None:
        self.anvil = anvil
        self.t = Transactor.connect(anvil.url)
        self.contract = self.t.deploy(DEPLOYER, "depeg-contracts", "USD2")
        self.chain_id = int(anvil.rpc("eth_chainId"), 16)

    def raw(self, sender: LocalAccount, function: str, *args, nonce: int, tip: int = GWEI) -> str:
        tx = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": self.contract.address,
            "data": self.contract.encode_abi(function, args=list(args)),
            "gas": 100_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 100 * GWEI,
        }
        return sender.sign_transaction(tx).raw_transaction.to_0x_hex()

    def balance(self, address: str) -> int:
        return self.contract.functions.balanceOf(address).call()


@pytest.fixture
def token(anvil: Anvil) -> Token:
    return Token(anvil)


@pytest.fixture
def relay(anvil: Anvil, token: Token) -> Iterator[Relay]:
    with Relay(anvil.url, max_blocks=3) as running:
        yield running


@pytest.fixture
def user(anvil: Anvil) -> LocalAccount:
    account = Account.create()
    anvil.set_balance(account.address, 10**18)
    return account


def send(relay: Relay, raw: str) -> str:
    return relay.answer(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
    )["result"]


def receipt(anvil: Anvil, tx_hash: str) -> dict | None:
    return anvil.rpc("eth_getTransactionReceipt", tx_hash)


def nonce(anvil: Anvil, address: str) -> int:
    return int(anvil.rpc("eth_getTransactionCount", address, "latest"), 16)


def test_a_reverting_transaction_waits_unmined_and_a_later_nonce_waits_behind_it(
    anvil, relay, token, user
):
    receiver = Account.create().address
    first = send(relay, token.raw(user, "transfer", receiver, 10, nonce=0))  # no tokens yet
    second = send(relay, token.raw(user, "transfer", receiver, 0, nonce=1))  # would succeed
    for _ in range(2):
        assert relay.mine() == []
    assert receipt(anvil, first) is None and receipt(anvil, second) is None
    assert anvil.rpc("eth_getTransactionByHash", first) is None, "the public node knows nothing"
    assert anvil.rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert nonce(anvil, user.address) == 0, "nothing paid"
    assert relay.held == 2 and relay.included == [] and relay.dropped == []

    # the public block makes the first succeed: both go in, in nonce order, after it
    funding = anvil.rpc(
        "eth_sendRawTransaction", token.raw(DEPLOYER, "transfer", user.address, 10, nonce=1)
    )
    assert relay.mine() == [first, second]
    mined = [receipt(anvil, h) for h in (funding, first, second)]
    assert [r["status"] for r in mined] == ["0x1"] * 3
    assert int(mined[0]["blockNumber"], 16) < int(mined[1]["blockNumber"], 16)
    assert int(mined[1]["transactionIndex"], 16) < int(mined[2]["transactionIndex"], 16)
    assert token.balance(receiver) == 10
    assert relay.held == 0 and relay.included == [first, second] and relay.received == 2


def test_what_never_succeeds_is_dropped_after_max_blocks_without_a_trace(anvil, relay, token, user):
    doomed = send(relay, token.raw(user, "transfer", DEPLOYER.address, 1, nonce=0))
    assert send(relay, token.raw(user, "transfer", DEPLOYER.address, 1, nonce=0)) == doomed
    for _ in range(relay.max_blocks - 1):
        relay.mine()
    assert relay.held == 1 and relay.dropped == []
    relay.mine()
    assert relay.held == 0 and relay.dropped == [doomed] and relay.included == []
    assert receipt(anvil, doomed) is None and nonce(anvil, user.address) == 0
    assert relay.received == 1, "the same transaction sent twice is held once"


def test_a_public_transaction_that_slips_in_first_cannot_make_the_relay_pay(
    anvil, relay, token, user, monkeypatch
):
    """The holder's allowance is spent by a public transaction that reaches anvil after the
    relay simulated: the relay's block is taken back, the public one mined on its own, and the
    relay's transaction waits."""
    spender = Account.create()
    anvil.set_balance(spender.address, 10**18)
    for raw in (
        token.raw(DEPLOYER, "transfer", user.address, 10, nonce=1),
        token.raw(user, "approve", spender.address, 10, nonce=0),
    ):
        anvil.rpc("eth_sendRawTransaction", raw)
    relay.mine()
    assert token.balance(user.address) == 10
    ask_node = relay._rpc
    slipped = []

    def slip_in(method, *params):
        answer = ask_node(method, *params)
        if method == "evm_snapshot" and not slipped:  # after the simulation, before the block
            sweep = token.raw(
                spender, "transferFrom", user.address, spender.address, 10, nonce=0, tip=5 * GWEI
            )
            slipped.append(ask_node("eth_sendRawTransaction", sweep))
        return answer

    pay = send(relay, token.raw(user, "transfer", DEPLOYER.address, 10, nonce=1))
    monkeypatch.setattr(relay, "_rpc", slip_in)
    head = anvil.block_number()
    assert relay.mine() == []
    monkeypatch.undo()
    assert slipped, "a public transaction reached anvil between simulation and block"
    assert receipt(anvil, pay) is None, "the relay's transaction was never left mined"
    assert relay.held == 1 and relay.included == []
    assert token.balance(spender.address) == 0 and anvil.block_number() == head + 1
    relay.mine()  # the public transaction that slipped in is mined, not lost
    assert token.balance(spender.address) == 10
    assert receipt(anvil, pay) is None and relay.held == 1


def test_reads_are_refused_and_held_transactions_are_unknown(anvil, relay, token, user):
    held = send(relay, token.raw(user, "transfer", DEPLOYER.address, 1, nonce=0))

    def ask(method, *params):
        return relay.answer({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})

    assert ask("eth_getTransactionByHash", held) == {"jsonrpc": "2.0", "id": 7, "result": None}
    assert ask("eth_getBalance", user.address, "latest")["error"]["code"] == -32601
    assert ask("eth_chainId")["result"] == anvil.rpc("eth_chainId")
    too_low = token.raw(DEPLOYER, "transfer", user.address, 1, nonce=0)  # used by the deploy
    assert ask("eth_sendRawTransaction", too_low)["error"]["message"] == "nonce too low"
    assert relay.calls["eth_getBalance"] == 1 and relay.received == 1
