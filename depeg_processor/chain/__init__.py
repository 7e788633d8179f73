"""The chain side: what the processor says to the node and what it sends there.

`rpc` is the JSON-RPC client (batches, a provider's limits), `classify` sorts every node error
into the processor's kinds, `simulation` runs a batch of calls against the pending state,
`product` encodes the product's calldata and `signing` signs its transactions.
"""
