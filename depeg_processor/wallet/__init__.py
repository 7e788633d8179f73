"""One wallet of the pool, whole: the unit of sending.

Everything that belongs to one wallet lives here, and nothing of it anywhere else:
- `pool`: the wallets of the mnemonic and where each keeps its state in Redis;
- `lease`: who may send from the wallet now (one holder, fenced writes);
- `nonce`, `records`: its next nonce and the write-ahead records of what it signed;
- `submit`: simulate → sign → write-ahead, for a batch of applications;
- `publish`: the one reader of `eth_sendRawTransaction` answers (first sends, resends and
  replacements), with one nonce-conflict policy;
- `replace`: stuck transactions re-priced under the fee cap;
- `inflight`, `receipts`, `watch`, `settle`: the watcher's round over what is in flight
  (receipts, reorgs, dropped and stuck transactions) and the settling of what is mined;
- `lifecycle`: the one status of a transaction in flight and the moves allowed between them;
- `last_seen`: what the watcher last saw of the wallet, for the consumer's guards;
- `wallet`: the object that holds all of the above for one wallet, built in one phase, with
  the one take-over path (`Wallet.take_over`) and the one door its callers use;
- `sending`: which wallet of the pool this process sends from (`SendingWallet`).
"""
