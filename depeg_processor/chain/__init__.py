"""The chain side: what the processor says to the node and what it sends there.

`calls` is the one interface of a chain client (`ChainClient`: the calls, typed, and what a
set of providers does beside them), so nothing that holds one knows how many nodes are behind
it. `rpc` is the JSON-RPC client of one node (`NodeClient`: batches, a provider's limits);
with several providers in CHAIN_RPC_URL, `providers` uses them as one node (`health` judges
each from its answers, `freshness` says which block a read needs, `broadcast` merges the
answers to a raw transaction), `clients` builds the one or the other, `each_provider` asks
each provider directly for the operator commands and `urls` is the one way a provider is
shown. `classify` sorts every node error into the processor's kinds, `simulation` runs a
batch of calls against the pending state, `product` encodes the product's calldata and
`signing` signs its transactions. Beneath them, what the Ethereum libraries did at a tenth of
a second of every start: `abi` (the ABI words of the few types used), `hexaddr` (keccak and
EIP-55 addresses), `secp256k1` (sign, recover) and `rlp_encode` (the envelope).
"""
