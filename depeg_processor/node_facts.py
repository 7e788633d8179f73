"""What the node says at start, asked before anything is built: the chain, the product's
message helper (the verifying contract of the signatures) and the first wallet's balance."""

from __future__ import annotations

import dataclasses
from typing import Any

from .chain.calls import ChainClient
from .chain.product import ProductCalls
from .config import Settings
from .errors import ProcessorError, StartupError


@dataclasses.dataclass(frozen=True)
class NodeFacts:
    """What the node says at start: the chain, the product's message helper (the verifying
    contract of the signatures) and the first wallet's balance."""

    chain_id: int
    message_helper: str
    balance: int  # the pool's first wallet's, in wei


def check_node(settings: Settings, chain: ChainClient, wallet: str) -> NodeFacts:
    """The chain id, the product's message helper and `wallet`'s balance, asked in one request
    (a batch: one round trip to a distant provider, not four); StartupError if the product
    address is not the product, ConfigError if several providers serve different chains
    (asked of each once: the entry point has asked already unless none answered then). The
    answers are judged in that order, an error raised as the call alone would raise it."""
    chain.agree_on_chain_id()
    calls = ProductCalls()
    to_product = {"to": settings.product_address, "data": calls.message_helper_call()}
    answers = chain.batch(
        [
            ("eth_chainId", []),
            ("eth_getCode", [settings.product_address, "latest"]),
            ("eth_call", [to_product, "latest"]),
            ("eth_getBalance", [wallet, "latest"]),
        ]
    )
    chain_id = int(_answer(answers[0]), 16)
    if not bytes.fromhex(_answer(answers[1])[2:]):
        raise StartupError(
            f"DEPEG_PRODUCT_ADDRESS {settings.product_address} has no contract "
            f"code on chain {chain_id}"
        )
    result = _answer(answers[2])
    if not result or len(result) < 66:
        raise StartupError(
            f"DEPEG_PRODUCT_ADDRESS {settings.product_address}: "
            "getMessageHelperAddress() returned nothing; is this the product?"
        )
    return NodeFacts(
        chain_id=chain_id,
        message_helper=calls.message_helper_result(result),
        balance=int(_answer(answers[3]), 16),
    )


def _answer(answer: Any) -> Any:
    """A batch member's value; its error raised."""
    if isinstance(answer, ProcessorError):
        raise answer
    return answer
