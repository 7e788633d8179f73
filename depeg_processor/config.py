"""Settings: read once at start from the environment (then `.env`), validated, frozen.

The variable names and defaults are those of the existing deployments; a bad value stops the
start with one line that names the variable and never echoes a secret.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from decouple import UndefinedValueError
from eth_account import Account
from eth_utils import to_checksum_address

from .chain.urls import split_urls
from .errors import ConfigError
from .inbound.application import is_valid_address

DERIVATION_PATH = "m/44'/60'/0'/0/0"
_UNITS = {"wei": 0, "kwei": 3, "mwei": 6, "gwei": 9, "szabo": 12, "finney": 15, "ether": 18}
_WEI = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the processor is told by its operator."""

    redis_url: str
    chain_rpc_url: str = dataclasses.field(repr=False)  # provider URLs often carry a key
    product_address: str
    mnemonic: str = dataclasses.field(repr=False)
    min_confirmations: int = 6
    node_env: str = ""
    log_level: str = "DEBUG"
    min_balance: int = 10**18
    alert_balance: int = 10**18
    max_fee_per_gas: int = 30 * 10**9
    max_priority_fee_per_gas: int | None = None
    max_non_ack_pending: int = 10
    balance_too_low_timeout: float = 60.0
    error_timeout: float = 30.0
    read_block_timeout: float = 30.0
    loop_max_timeout: float = 60.0
    host: str = "0.0.0.0"
    port: int = 3000
    stream_key: str = "application:signatures"
    group: str = "depeg-backend-processor"
    consumer: str = "depeg-backend-processor-consumer"
    dead_letter_key: str = "application:signatures:dead"
    read_count: int = 10
    receipt_poll_interval: float = 2.0
    idle_poll_interval: float = 30.0
    rpc_timeout: float = 10.0
    chain_max_batch: int = 100
    max_deliveries: int = 10
    lease_ttl: float = 15.0
    stuck_blocks: int = 3
    stuck_timeout: float = 30.0
    max_gas_spend_per_hour: int | None = None
    stream_retention: float = 7 * 24 * 3600.0
    wallets: int = 1
    max_in_flight: int = 16  # geth's txpool.accountslots: what a full pool keeps of an account

    @property
    def production(self) -> bool:
        return self.node_env == "production"

    @property
    def chain_rpc_urls(self) -> tuple[str, ...]:
        """The providers of CHAIN_RPC_URL (comma-separated), the preferred one first."""
        return split_urls(self.chain_rpc_url)


def parse_wei(text: str) -> int:
    """A wei amount: an integer, or a number with a unit (`30 gwei`, `1 ether`)."""
    match = _WEI.match(text)
    if not match:
        raise ValueError("expected wei as an integer, or a number with a unit such as '30 gwei'")
    number, unit = match.group(1), (match.group(2).lower() or "wei")
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} (use one of {', '.join(_UNITS)})")
    amount = Decimal(number) * (Decimal(10) ** _UNITS[unit])
    if amount != amount.to_integral_value():
        raise ValueError("not a whole number of wei")
    return int(amount)


def parse_millis(text: str) -> float:
    """Milliseconds (a non-negative integer) as seconds."""
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value / 1000.0


def parse_count(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_port(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port number")
    return value


def parse_address(text: str) -> str:
    if not is_valid_address(text.strip()):
        raise ValueError(
            "not a valid address (0x and 40 hex digits, correct checksum if mixed case)"
        )
    return to_checksum_address(text.strip())


def parse_log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def check_mnemonic(mnemonic: str) -> str:
    """The mnemonic, normalised, if it derives an account; errors never contain it."""
    words = " ".join(mnemonic.split())
    Account.enable_unaudited_hdwallet_features()  # here, not at import: see derive_accounts
    try:
        Account.from_mnemonic(words, account_path=DERIVATION_PATH)
    except Exception:  # the library's messages may quote the words
        raise ValueError("is not a valid BIP-39 mnemonic") from None
    return words


def load_settings(config: Callable[..., object]) -> Settings:
    """Build the settings from a python-decouple `Config`/`AutoConfig` (environment first,
    then `.env`)."""

    def get(
        name: str,
        parse: Callable[[str], object],
        default: str | None = None,
        *,
        secret: bool = False,
    ) -> object:
        try:
            raw = config(name) if default is None else config(name, default=default)
        except UndefinedValueError:
            raise ConfigError(name, "is required but not set") from None
        raw = str(raw)
        if not raw.strip():
            raise ConfigError(name, "is set but empty")
        try:
            return parse(raw)
        except (ValueError, InvalidOperation) as error:
            detail = "is not valid" if secret else f"{raw!r} is not valid: {error}"
            raise ConfigError(name, detail) from None

    def optional(name: str) -> str | None:
        value = config(name, default="")
        return str(value) if str(value).strip() else None

    mnemonic_file = optional("PROCESSOR_MNEMONIC_FILE")
    if mnemonic_file is not None:
        try:
            raw_mnemonic = Path(mnemonic_file).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                "PROCESSOR_MNEMONIC_FILE", f"cannot be read: {error.strerror}"
            ) from None
        try:
            mnemonic = check_mnemonic(raw_mnemonic)
        except ValueError as error:
            raise ConfigError("PROCESSOR_MNEMONIC_FILE", f"content {error}") from None
    else:
        mnemonic = get("PROCESSOR_MNEMONIC", check_mnemonic, secret=True)

    confirmations_name = "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS"
    if optional(confirmations_name) is None and optional("CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS"):
        confirmations_name = "CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS"

    node_env = optional("NODE_ENV") or ""
    default_level = "INFO" if node_env == "production" else "DEBUG"
    priority = optional("MAX_PRIORITY_FEE_PER_GAS")

    settings = Settings(
        redis_url=get("REDIS_URL", str, "redis://localhost:6379"),
        chain_rpc_url=get("CHAIN_RPC_URL", str),
        product_address=get("DEPEG_PRODUCT_ADDRESS", parse_address),
        mnemonic=mnemonic,
        min_confirmations=get(confirmations_name, parse_count, "6"),
        node_env=node_env,
        log_level=get("LOG_LEVEL", parse_log_level, default_level),
        min_balance=get("PROCESSOR_MIN_BALANCE", parse_wei, str(10**18)),
        alert_balance=get("PROCESSOR_ALERT_BALANCE", parse_wei, str(10**18)),
        max_fee_per_gas=get("MAX_FEE_PER_GAS", parse_wei, str(30 * 10**9)),
        max_priority_fee_per_gas=(
            get("MAX_PRIORITY_FEE_PER_GAS", parse_wei) if priority is not None else None
        ),
        max_non_ack_pending=get("MAX_NON_ACK_PENDING_MESSAGES", parse_count, "10"),
        balance_too_low_timeout=get("BALANCE_TOO_LOW_TIMEOUT", parse_millis, "60000"),
        error_timeout=get("ERROR_TIMEOUT", parse_millis, "30000"),
        read_block_timeout=get("REDIS_READ_BLOCK_TIMEOUT", parse_millis, "30000"),
        loop_max_timeout=get("PROCESSOR_QUEUE_LISTENER_LOOP_MAX_TIMEOUT", parse_millis, "60000"),
        host=get("HOST", str, "0.0.0.0"),
        port=get("PORT", parse_port, "3000"),
        stream_key=get("REDIS_QUEUE_STREAM_KEY", str, "application:signatures"),
        group=get("REDIS_QUEUE_APPLICATION_ID", str, "depeg-backend-processor"),
        consumer=get("REDIS_QUEUE_CONSUMER_ID", str, "depeg-backend-processor-consumer"),
        dead_letter_key=get("REDIS_QUEUE_DEAD_LETTER_KEY", str, "application:signatures:dead"),
        read_count=get("REDIS_READ_COUNT", parse_count, "10"),
        receipt_poll_interval=get("RECEIPT_POLL_INTERVAL", parse_millis, "2000"),
        idle_poll_interval=get("CHAIN_IDLE_POLL_INTERVAL", parse_millis, "30000"),
        rpc_timeout=get("CHAIN_RPC_TIMEOUT", parse_millis, "10000"),
        chain_max_batch=get("CHAIN_RPC_MAX_BATCH", parse_count, "100"),
        max_deliveries=get("REDIS_QUEUE_MAX_DELIVERIES", parse_count, "10"),
        lease_ttl=get("PROCESSOR_LEASE_TTL", parse_millis, "15000"),
        stuck_blocks=get("TX_STUCK_BLOCKS", parse_count, "3"),
        stuck_timeout=get("TX_STUCK_TIMEOUT", parse_millis, "30000"),
        max_gas_spend_per_hour=(
            get("MAX_GAS_SPEND_PER_HOUR", parse_wei)
            if optional("MAX_GAS_SPEND_PER_HOUR") is not None
            else None
        ),
        stream_retention=get("REDIS_STREAM_RETENTION", parse_millis, "604800000"),
        wallets=get("PROCESSOR_WALLETS", parse_count, "1"),
        max_in_flight=get("PROCESSOR_MAX_IN_FLIGHT", parse_count, "16"),
    )
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.alert_balance < settings.min_balance:
        raise ConfigError(
            "PROCESSOR_ALERT_BALANCE",
            f"{settings.alert_balance} is below PROCESSOR_MIN_BALANCE "
            f"{settings.min_balance}; the alert must fire before sending stops",
        )
    if settings.max_fee_per_gas <= 0:
        raise ConfigError("MAX_FEE_PER_GAS", "must be above zero")
    if (
        settings.max_priority_fee_per_gas is not None
        and settings.max_priority_fee_per_gas > settings.max_fee_per_gas
    ):
        raise ConfigError("MAX_PRIORITY_FEE_PER_GAS", "must not exceed MAX_FEE_PER_GAS")
    if settings.read_count < 1:
        raise ConfigError("REDIS_READ_COUNT", "must be at least 1")
    if settings.chain_max_batch < 1:
        raise ConfigError("CHAIN_RPC_MAX_BATCH", "must be at least 1")
    if settings.idle_poll_interval <= 0:
        raise ConfigError("CHAIN_IDLE_POLL_INTERVAL", "must be above zero")
    if settings.receipt_poll_interval <= 0:
        raise ConfigError("RECEIPT_POLL_INTERVAL", "must be above zero")
    if settings.lease_ttl < 1.0:
        raise ConfigError("PROCESSOR_LEASE_TTL", "must be at least 1000 ms")
    if settings.stuck_blocks < 1:
        raise ConfigError("TX_STUCK_BLOCKS", "must be at least 1")
    if settings.wallets < 1:
        raise ConfigError("PROCESSOR_WALLETS", "must be at least 1")
    if settings.max_in_flight < 1:
        raise ConfigError("PROCESSOR_MAX_IN_FLIGHT", "must be at least 1")
    if settings.max_deliveries < 1:
        raise ConfigError("REDIS_QUEUE_MAX_DELIVERIES", "must be at least 1")
    if settings.dead_letter_key == settings.stream_key:
        raise ConfigError("REDIS_QUEUE_DEAD_LETTER_KEY", "must differ from REDIS_QUEUE_STREAM_KEY")
    urls = split_urls(settings.chain_rpc_url)
    if not urls:
        raise ConfigError("CHAIN_RPC_URL", "must be an http:// or https:// URL")
    for index, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            which = f"URL #{index} of the list" if len(urls) > 1 else "it"
            raise ConfigError("CHAIN_RPC_URL", f"must be http:// or https:// URLs ({which} is not)")
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
