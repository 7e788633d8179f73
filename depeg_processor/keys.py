"""Every Redis key name of the service, built here and nowhere else.

Deployed data lives under these names, so each one is part of the service's storage format:
a change here moves (or strands) data. The web app writes `PendingApplication:<entityId>` and
the stream; everything else is this service's own. Per-application state that holds whichever
wallet sends the application (done marker, owner mark, signature mark), and what holds back a
policy holder (its hold, its application in flight), lives under the stream's name; what one
wallet owns (records, in-flight set, spend ledger) lives under its prefix.

Pure functions of their arguments: no I/O, nothing checked (entity ids are validated before a
key is built for them, or escaped where they are not).
"""

from __future__ import annotations

from .chain.hexaddr import keccak256

APPLICATION_PREFIX = "PendingApplication:"  # the web app's, shared wire format


def application_key(entity_id: str) -> str:
    """The web app's pending application hash."""
    return APPLICATION_PREFIX + entity_id


def owner_key(stream: str, entity_id: str) -> str:
    """Which wallet recorded a transaction for this application first (its address)."""
    return f"{stream}:owner:{entity_id}"


def signature_key(stream: str, signature: bytes) -> str:
    """Which application sent this signature (its entity id and transaction): one signature,
    one application. Named by the keccak of the signature's bytes, so a user's value never
    becomes part of a key name."""
    return f"{stream}:signature:{keccak256(signature).hex()}"


def done_key(stream: str, entity_id: str) -> str:
    """Set when an application's transaction is confirmed, whichever wallet sent it."""
    return f"{stream}:done:{entity_id}"


def held_key(stream: str, holder: str) -> str:
    """A policy holder held to account: a transaction of its application reverted on chain
    (a hash: entityId, tx, block, reason, since), for HOLDER_HOLD_SECONDS. `holder` is the
    address in lowercase 0x-hex."""
    return f"{stream}:held:{holder}"


def holder_busy_key(stream: str, holder: str) -> str:
    """The record key of a policy holder's application with a transaction of the pool not yet
    settled: one application per holder in flight. Stale once that record is gone."""
    return f"{stream}:holder-busy:{holder}"


def lease_key(stream: str, address: str) -> str:
    """The lease of one wallet: who sends from it."""
    return f"{stream}:lease:{address}"


def lease_released_channel(stream: str) -> str:
    """The pub/sub channel on which a process stopping cleanly announces the lease it gave up
    ("<lease key> <owner>"), so a standby takes the wallet over at once. A channel, not a key:
    nothing is stored under it."""
    return f"{stream}:lease-released"


def wallet_prefix(stream: str, index: int, address: str) -> str:
    """Where one wallet keeps its records, in-flight set and spend ledger. The first wallet
    keeps the stream's own name, as a single-wallet processor always did, so such a deployment
    upgrades without moving data."""
    if index == 0:
        return stream
    return f"{stream}:wallet:{address}"


def record_key(prefix: str, entity_id: str) -> str:
    """A wallet's write-ahead record of the transaction it signed for this application."""
    return f"{prefix}:tx:{entity_id}"


def inflight_key(prefix: str) -> str:
    """A wallet's in-flight set: entity ids scored by nonce."""
    return f"{prefix}:inflight"


def spent_key(prefix: str) -> str:
    """A wallet's spend ledger: "<tx hash>:<wei>" scored by confirmation time."""
    return f"{prefix}:spent"


def reverted_key(stream: str) -> str:
    """The pool's revert ledger, for MAX_REVERTED_GAS_PER_HOUR: "<tx hash>:<gas>:<wei>" of each
    transaction of any wallet that reverted on chain, scored by when it was settled."""
    return f"{stream}:reverted"


def pool_in_flight_key(stream: str) -> str:
    """For the pool-wide spending guard: a hash, one field per wallet (its address), of
    "<wei>:<time>", the most that wallet's transactions in flight can cost as its watcher last
    counted them."""
    return f"{stream}:pool-in-flight"


def pool_version_key(stream: str) -> str:
    """Counts the batches every wallet of the pool recorded: a batch simulated after what was
    in flight is written only if no other wallet recorded one meanwhile."""
    return f"{stream}:pool-version"
