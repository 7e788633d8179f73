"""Every environment variable the processor reads, declared once: its name, the settings field
it fills, its kind, its default as an operator would write it, its bounds and one line of help.

The settings object (`config.Settings`), the check at start (`config.load_settings`),
`.env.example` and `docs/configuration.md` (`config_docs`) are all made from this table, so a
default or a bound written here is the one the processor applies and the one the docs show.
The order is the order of the docs and of the errors at start.
"""

from __future__ import annotations

import dataclasses

from .chain.rpc import DEFAULT_MAX_BATCH
from .config_kinds import (
    ABOVE_ZERO,
    ADDRESS,
    COUNT,
    HTTP_URL,
    HTTP_URLS,
    LABELS,
    LEVEL,
    MILLIS,
    MNEMONIC,
    PORT,
    REDIS_URL,
    SECRET_LINE,
    SIGNER,
    TEXT,
    URL,
    URLS,
    WEI,
    Bound,
    Kind,
    at_least,
)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable. A setting with neither a default nor `required` is optional:
    unset or empty, its field is None."""

    name: str
    field: str
    kind: Kind
    default: str | None = None  # parsed by `kind` like a value the operator sets
    help: str = ""
    bound: Bound | None = None
    required: bool = False
    secret: bool = False  # its value is never echoed: not in errors, repr, docs or the example
    example: str = ""  # what `.env.example` suggests for a required one
    alias: str | None = None  # another spelling, read when `name` is unset
    from_file: bool = False  # NAME_FILE names a file that holds the value instead (secrets)
    production_default: str | None = None  # the default when NODE_ENV=production
    section: str = ""
    signer: str = ""  # required when PROCESSOR_SIGNER is this (read before: see the table)

    @property
    def file_name(self) -> str:
        return f"{self.name}_FILE"

    @property
    def unset_value(self) -> object:
        """The field's value when the variable is unset (None for an optional one)."""
        return None if self.default is None else self.kind.parse(self.default)


def _section(title: str, *rows: Setting) -> tuple[Setting, ...]:
    return tuple(dataclasses.replace(row, section=title) for row in rows)


TABLE: tuple[Setting, ...] = (
    *_section(
        "required",
        Setting(
            "CHAIN_RPC_URL", "chain_rpc_url", URLS, required=True, secret=True,
            bound=HTTP_URLS, example="http://localhost:8545",
            help="JSON-RPC URL of the node (http/https), or a comma-separated list of "
            "providers of one chain, the first preferred (see "
            "docs/providers.md); a provider URL often carries a key",
        ),
        Setting(
            "DEPEG_PRODUCT_ADDRESS", "product_address", ADDRESS, required=True, example="0x...",
            help="the depeg product contract (a mixed-case address must have the right checksum)",
        ),
        # PROCESSOR_SIGNER before the keys' rows: which of them are required depends on it
        Setting(
            "PROCESSOR_SIGNER", "signer", SIGNER, "mnemonic",
            help="where the wallets' keys are: mnemonic (PROCESSOR_MNEMONIC), keystore "
            "(PROCESSOR_KEYSTORE) or pkcs11 (a token; the keys never leave it). See "
            "docs/operations.md#secrets",
        ),
        Setting(
            "PROCESSOR_MNEMONIC", "mnemonic", MNEMONIC, signer="mnemonic", secret=True,
            from_file=True, example="replace with the wallet's twelve or twenty-four words",
            help="BIP-39 mnemonic of the processor wallet (first account, m/44'/60'/0'/0/0); "
            "never commit a real one. Better: PROCESSOR_MNEMONIC_FILE",
        ),
    ),
    *_section(
        "the keys of the keystore and pkcs11 signers",
        Setting(
            "PROCESSOR_KEYSTORE", "keystore", TEXT, signer="keystore",
            help="a folder of Web3 Secret Storage (v3) files as geth, clef and `cast wallet` "
            "write them, one wallet each in file-name order, or one such file",
        ),
        Setting(
            "PROCESSOR_KEYSTORE_PASSWORD", "keystore_password", SECRET_LINE, signer="keystore",
            secret=True, from_file=True,
            help="the keystore files' password (its first line); better: "
            "PROCESSOR_KEYSTORE_PASSWORD_FILE",
        ),
        Setting(
            "PROCESSOR_PKCS11_MODULE", "pkcs11_module", TEXT, signer="pkcs11",
            help="the token's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so; an "
            "HSM's, AWS CloudHSM's or Google Cloud KMS's own)",
        ),
        Setting(
            "PROCESSOR_PKCS11_TOKEN_LABEL", "pkcs11_token_label", TEXT, signer="pkcs11",
            help="the label of the token that holds the keys",
        ),
        Setting(
            "PROCESSOR_PKCS11_PIN", "pkcs11_pin", SECRET_LINE, signer="pkcs11", secret=True,
            from_file=True,
            help="the token's user PIN (its first line); better: PROCESSOR_PKCS11_PIN_FILE",
        ),
        Setting(
            "PROCESSOR_PKCS11_KEY_LABELS", "pkcs11_key_labels", LABELS, signer="pkcs11",
            help="labels of the token's secp256k1 key pairs, comma-separated: one wallet each, "
            "in pool order",
        ),
    ),
    *_section(
        "Redis and the stream",
        Setting("REDIS_URL", "redis_url", TEXT, "redis://localhost:6379", bound=REDIS_URL,
                help="Redis URL"),
        Setting("REDIS_QUEUE_STREAM_KEY", "stream_key", TEXT, "application:signatures",
                help="the stream the web app writes the signed applications to"),
        Setting("REDIS_QUEUE_APPLICATION_ID", "group", TEXT, "depeg-backend-processor",
                help="consumer group"),
        Setting("REDIS_QUEUE_CONSUMER_ID", "consumer", TEXT, "depeg-backend-processor-consumer",
                help="consumer name"),
        Setting("REDIS_QUEUE_DEAD_LETTER_KEY", "dead_letter_key", TEXT,
                "application:signatures:dead",
                help="dead-letter stream; must differ from REDIS_QUEUE_STREAM_KEY"),
        Setting("REDIS_DEAD_LETTER_RETENTION", "dead_letter_retention", MILLIS, "2592000000",
                help="ms a dead letter is kept before it is trimmed (30 days); 0: never by age"),
        Setting("REDIS_DEAD_LETTER_MAX_COUNT", "dead_letter_max_count", COUNT, "100000",
                bound=at_least(1),
                help="how many dead letters are kept at most; the oldest go first"),
        Setting("REDIS_DURABLE_WAIT", "durable_wait", MILLIS, "1000",
                help="ms a batch's write-ahead may wait to reach the append-only file (WAITAOF, "
                "Redis 7.2+) or a replica (WAIT) before its broadcast; it goes out anyway "
                "after; 0: no wait"),
        Setting("REDIS_READ_COUNT", "read_count", COUNT, "10", bound=at_least(1),
                help="entries read per XREADGROUP (a batch); keep it <= "
                "MAX_NON_ACK_PENDING_MESSAGES, a batch in hand is unacknowledged"),
        Setting("REDIS_READ_BLOCK_TIMEOUT", "read_block_timeout", MILLIS, "30000",
                help="ms one XREADGROUP may block (the loop wakes at least every second to "
                "honour a stop)"),
        Setting("REDIS_QUEUE_MAX_DELIVERIES", "max_deliveries", COUNT, "10", bound=at_least(1),
                help="deliveries after which an entry is dead-lettered"),
        Setting("REDIS_STREAM_RETENTION", "stream_retention", MILLIS, "604800000",
                help="ms an acknowledged stream entry is kept before it is trimmed (7 days); "
                "0: never trim (see docs/redis-contract.md#what-is-kept-and-what-is-trimmed)"),
    ),
    *_section(
        "the chain",
        Setting("CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS", "min_confirmations", COUNT, "6",
                alias="CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS",
                help="confirmations before an application is purged (the deployed spelling; "
                "CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS is accepted too, and this one wins when "
                "both are set)"),
        Setting("CHAIN_SEND_URL", "chain_send_url", URL, secret=True, bound=HTTP_URL,
                help="a send-only private relay (Flashbots Protect, MEV Blocker's no-revert "
                "endpoint): every raw transaction goes there and nowhere else, reads never; "
                "unset: raw transactions go to CHAIN_RPC_URL (see docs/private-relay.md)"),
        Setting("CHAIN_SEND_DROP_BLOCKS", "send_drop_blocks", COUNT, "25", bound=at_least(1),
                help="with CHAIN_SEND_URL: blocks a transaction the relay holds may stay "
                "unmined before it is simulated again, then sent again or set aside and its "
                "nonce filled (relays drop what they could not include in about 25 blocks)"),
        Setting("CHAIN_RPC_TIMEOUT", "rpc_timeout", MILLIS, "10000",
                help="ms for one JSON-RPC request"),
        Setting("CHAIN_IDLE_POLL_INTERVAL", "idle_poll_interval", MILLIS, "30000",
                bound=ABOVE_ZERO,
                help="ms between the head, balance and nonce look-ups while nothing is in "
                "flight (and the slowest head look-up while something is)"),
        # the node client's own cap, which one-off commands such as check-config keep
        Setting("CHAIN_RPC_MAX_BATCH", "chain_max_batch", COUNT, str(DEFAULT_MAX_BATCH),
                bound=at_least(1),
                help="most calls in one JSON-RPC batch; lowered by itself when the provider "
                "refuses a batch (see docs/what-happens-when.md)"),
        Setting("CHAIN_SIMULATION_GAS_CAP", "simulation_gas_cap", COUNT, "50000000",
                bound=at_least(3_000_000),
                help="most gas one eth_simulateV1 request may ask (the replay of what is in "
                "flight and the batch together): the node's own cap, 50 M by default on geth, "
                "reth (--rpc.gascap) and anvil; lowered by itself when the node refuses a "
                "simulation for it, and a batch that does not fit waits"),
        Setting("MAX_FEE_PER_GAS", "max_fee_per_gas", WEI, "30 gwei", bound=ABOVE_ZERO,
                help="EIP-1559 fee cap"),
        Setting("MAX_GAS_PER_TRANSACTION", "max_gas_per_transaction", COUNT, "10000000",
                bound=at_least(21000),
                help="the signing policy's gas cap: no transaction is signed with a higher "
                "limit (the real product's gas grows by about 60,000 with each active bundle "
                "of its riskpool; see docs/operations.md#signing-policy)"),
        Setting("MAX_PRIORITY_FEE_PER_GAS", "max_priority_fee_per_gas", WEI,
                help="the tip, at most MAX_FEE_PER_GAS; unset: the node's "
                "eth_maxPriorityFeePerGas"),
        Setting("TX_STUCK_BLOCKS", "stuck_blocks", COUNT, "3", bound=at_least(1),
                help="blocks a transaction may stay unmined before it is looked up and replaced"),
        Setting("TX_STUCK_TIMEOUT", "stuck_timeout", MILLIS, "30000",
                help="ms, the same for chains that mine no block meanwhile (an automining dev "
                "node that missed a transaction)"),
        Setting("RECEIPT_POLL_INTERVAL", "receipt_poll_interval", MILLIS, "2000",
                bound=ABOVE_ZERO,
                help="ms between receipt-watcher rounds; the fastest it asks the node for the "
                "head, and how often a wallet at PROCESSOR_MAX_IN_FLIGHT looks again"),
    ),
    *_section(
        "the wallet",
        Setting("PROCESSOR_MIN_BALANCE", "min_balance", WEI, "1 ether",
                help="below it nothing is sent"),
        Setting("PROCESSOR_ALERT_BALANCE", "alert_balance", WEI, "1 ether",
                help="below it /api/monitor fails `balance`; must be >= PROCESSOR_MIN_BALANCE"),
        Setting("BALANCE_TOO_LOW_TIMEOUT", "balance_too_low_timeout", MILLIS, "60000",
                help="ms to wait before re-checking a too-low balance"),
        Setting("MAX_GAS_SPEND_PER_HOUR", "max_gas_spend_per_hour", WEI,
                help="wei per hour the pool's mined and in-flight transactions may cost, all "
                "its wallets together (the spending guard, "
                "docs/operations.md#spending-guard); unset: no ceiling"),
        Setting("MAX_REVERTED_GAS_PER_HOUR", "max_reverted_gas_per_hour", COUNT, "2000000",
                help="gas the pool's transactions that revert on chain may use per hour, all "
                "its wallets together; at it every wallet holds sending until the hour rolls "
                "below (the revert budget, docs/operations.md#revert-budget). The default is "
                "about ten reverts at the allowance check (196 k gas each), two at the bundle's "
                "capital (1.12 M); 0: no budget"),
        Setting("HOLDER_HOLD_SECONDS", "holder_hold_seconds", COUNT, "86400",
                help="seconds a policy holder whose application's transaction reverted on "
                "chain is held: its applications are set aside meanwhile (`release-holder` "
                "lifts it; docs/what-happens-when.md#one-paid-revert-per-holder); 0: no hold"),
        Setting("PROCESSOR_LEASE_TTL", "lease_ttl", MILLIS, "15000",
                bound=at_least(1.0, "1000 ms"),
                help="ms the wallet's sender lease lasts unless renewed"),
        Setting("PROCESSOR_WALLETS", "wallets", COUNT, "1", bound=at_least(1),
                help="with PROCESSOR_SIGNER=mnemonic, wallets in the pool: the first N accounts "
                "of the mnemonic (m/44'/60'/0'/0/0 .. N-1; the other signers' pool is their "
                "keys); each replica sends from the first one whose lease is free (see "
                "docs/scaling.md)"),
        Setting("PROCESSOR_MAX_IN_FLIGHT", "max_in_flight", COUNT, "64", bound=at_least(1),
                help="the most transactions a wallet keeps signed and not yet mined; below it "
                "the limit follows what the next blocks take by gas (1.5 blocks of the chain's "
                "gas limit over the gas an application uses, at least 16: geth's "
                "txpool.accountslots, what a full pool keeps of one account), and falls back "
                "to 16 while the node's pool shows it is full (docs/scaling.md). At the limit "
                "the replica reads no new entries until one is mined"),
    ),
    *_section(
        "the loop, the monitor, the logs",
        Setting("ERROR_TIMEOUT", "error_timeout", MILLIS, "30000",
                help="ms to wait after an error before retrying"),
        Setting("PROCESSOR_QUEUE_LISTENER_LOOP_MAX_TIMEOUT", "loop_max_timeout", MILLIS,
                "60000",
                help="ms; /api/monitor fails `processor` if the loop has not completed an "
                "iteration for this long"),
        Setting("MAX_NON_ACK_PENDING_MESSAGES", "max_non_ack_pending", COUNT, "10",
                help="above this many delivered-but-unacknowledged entries /api/monitor fails "
                "`nonAckPendingTx`"),
        Setting("PORT", "port", PORT, "3000", help="the monitor's HTTP port"),
        Setting("HOST", "host", TEXT, "0.0.0.0", help="the monitor's bind address"),
        # NODE_ENV before LOG_LEVEL: the level's default depends on it
        Setting("NODE_ENV", "node_env", TEXT, "",
                help="production: JSON log lines at INFO; anything else: readable lines at "
                "DEBUG"),
        Setting("LOG_LEVEL", "log_level", LEVEL, "DEBUG", production_default="INFO",
                help="overrides the level NODE_ENV implies: DEBUG, INFO, WARNING, ERROR or "
                "CRITICAL"),
    ),
)  # fmt: skip


def row(field: str) -> Setting:
    """The setting that fills this field of `Settings`."""
    return next(setting for setting in TABLE if setting.field == field)


def default(field: str) -> object:
    """The value a field of `Settings` has when its variable is unset."""
    return row(field).unset_value
