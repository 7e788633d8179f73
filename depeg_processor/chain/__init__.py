"""The chain side: what the processor says to the node and what it sends there.

`rpc` is the JSON-RPC client of one node (batches, a provider's limits) and `calls` the typed
calls every client answers; with several providers in CHAIN_RPC_URL, `providers` uses them as
one node (`health` judges each from its answers, `heads` says which block a read needs,
`broadcast` merges the answers to a raw transaction), `clients` builds the one or the other,
`survey` asks each provider directly for the operator commands and `urls` is the one way a
provider is shown. `classify` sorts every node error into the processor's kinds, `simulation`
runs a batch of calls against the pending state, `product` encodes the product's calldata and
`signing` signs its transactions.
"""
