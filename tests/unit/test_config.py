"""config.load_settings: the deployments' variable names, defaults and refusals."""

from __future__ import annotations

import dataclasses
import re

import pytest
from decouple import Config, RepositoryEmpty

from depeg_processor.config import load_settings
from depeg_processor.errors import ConfigError

MNEMONIC = "test test test test test test test test test test test junk"
PRODUCT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REQUIRED = {
    "CHAIN_RPC_URL": "http://node.test:8545",
    "DEPEG_PRODUCT_ADDRESS": PRODUCT,
    "PROCESSOR_MNEMONIC": MNEMONIC,
}
VARIABLES = (
    "REDIS_URL",
    "CHAIN_RPC_URL",
    "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS",
    "CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS",
    "NODE_ENV",
    "LOG_LEVEL",
    "DEPEG_PRODUCT_ADDRESS",
    "PROCESSOR_MNEMONIC",
    "PROCESSOR_MNEMONIC_FILE",
    "PROCESSOR_MIN_BALANCE",
    "PROCESSOR_ALERT_BALANCE",
    "MAX_FEE_PER_GAS",
    "MAX_PRIORITY_FEE_PER_GAS",
    "MAX_NON_ACK_PENDING_MESSAGES",
    "BALANCE_TOO_LOW_TIMEOUT",
    "ERROR_TIMEOUT",
    "REDIS_READ_BLOCK_TIMEOUT",
    "PROCESSOR_QUEUE_LISTENER_LOOP_MAX_TIMEOUT",
    "HOST",
    "PORT",
    "REDIS_QUEUE_STREAM_KEY",
    "REDIS_QUEUE_APPLICATION_ID",
    "REDIS_QUEUE_CONSUMER_ID",
    "REDIS_QUEUE_DEAD_LETTER_KEY",
    "REDIS_DEAD_LETTER_RETENTION",
    "REDIS_DEAD_LETTER_MAX_COUNT",
    "REDIS_DURABLE_WAIT",
    "REDIS_READ_COUNT",
    "RECEIPT_POLL_INTERVAL",
    "CHAIN_RPC_TIMEOUT",
    "CHAIN_SEND_URL",
    "CHAIN_SEND_DROP_BLOCKS",
    "REDIS_QUEUE_MAX_DELIVERIES",
    "PROCESSOR_LEASE_TTL",
    "TX_STUCK_BLOCKS",
    "TX_STUCK_TIMEOUT",
    "MAX_GAS_SPEND_PER_HOUR",
    "MAX_REVERTED_GAS_PER_HOUR",
    "HOLDER_HOLD_SECONDS",
    "REDIS_STREAM_RETENTION",
    "CHAIN_RPC_MAX_BATCH",
    "CHAIN_SIMULATION_GAS_CAP",
    "CHAIN_IDLE_POLL_INTERVAL",
    "PROCESSOR_WALLETS",
    "PROCESSOR_MAX_IN_FLIGHT",
    "PROCESSOR_SIGNER",
    "PROCESSOR_KEYSTORE",
    "PROCESSOR_KEYSTORE_PASSWORD",
    "PROCESSOR_KEYSTORE_PASSWORD_FILE",
    "PROCESSOR_PKCS11_MODULE",
    "PROCESSOR_PKCS11_TOKEN_LABEL",
    "PROCESSOR_PKCS11_PIN",
    "PROCESSOR_PKCS11_PIN_FILE",
    "PROCESSOR_PKCS11_KEY_LABELS",
    "MAX_GAS_PER_TRANSACTION",
)


class DictRepository(RepositoryEmpty):
    def __init__(self, values: dict[str, str]) -> None:
        super().__init__()
        self.values = values
        self.asked: set[str] = set()

    def __contains__(self, key: str) -> bool:
        self.asked.add(key)
        return key in self.values

    def __getitem__(self, key: str) -> str:
        return self.values[key]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def load(**values: str):
    return load_settings(Config(DictRepository({**REQUIRED, **values})))


def refusal(**values: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(**values)
    return caught.value


def test_every_variable_read_is_isolated_from_the_environment() -> None:
    repository = DictRepository(dict(REQUIRED))
    load_settings(Config(repository))
    assert repository.asked <= set(VARIABLES), repository.asked - set(VARIABLES)


def test_defaults_match_the_wire_format() -> None:
    settings = load()
    assert settings.redis_url == "redis://localhost:6379"
    assert settings.min_confirmations == 6
    assert settings.min_balance == settings.alert_balance == 10**18
    assert settings.max_fee_per_gas == 30 * 10**9
    assert settings.max_priority_fee_per_gas is None
    assert settings.max_non_ack_pending == 10
    assert (
        settings.balance_too_low_timeout,
        settings.error_timeout,
        settings.read_block_timeout,
        settings.loop_max_timeout,
    ) == (60.0, 30.0, 30.0, 60.0)
    assert settings.port == 3000
    assert settings.stream_key == "application:signatures"
    assert settings.group == "depeg-backend-processor"
    assert settings.consumer == "depeg-backend-processor-consumer"
    assert settings.dead_letter_key == "application:signatures:dead"
    assert settings.product_address == PRODUCT
    assert settings.mnemonic == MNEMONIC
    assert settings.chain_max_batch == 100


def test_batch_cap_is_read() -> None:
    assert load(CHAIN_RPC_MAX_BATCH="10").chain_max_batch == 10


def test_the_wallet_pool_is_one_wallet_unless_set() -> None:
    assert load().wallets == 1
    assert load(PROCESSOR_WALLETS="3").wallets == 3
    assert "PROCESSOR_WALLETS" in str(refusal(PROCESSOR_WALLETS="0"))


def test_the_in_flight_cap_is_an_upper_bound_over_geths_account_slots_unless_set() -> None:
    # the limit below it follows the blocks, from geth's 16 (tests/unit/test_block_room.py)
    assert load().max_in_flight == 64
    assert load(PROCESSOR_MAX_IN_FLIGHT="64").max_in_flight == 64
    assert "PROCESSOR_MAX_IN_FLIGHT" in str(refusal(PROCESSOR_MAX_IN_FLIGHT="0"))
    assert "PROCESSOR_MAX_IN_FLIGHT" in str(refusal(PROCESSOR_MAX_IN_FLIGHT="many"))


def test_values_are_read_and_converted() -> None:
    settings = load(
        REDIS_URL="redis://cache:6380/1",
        MAX_NON_ACK_PENDING_MESSAGES="3",
        BALANCE_TOO_LOW_TIMEOUT="1500",
        ERROR_TIMEOUT="250",
        PORT="8080",
        REDIS_QUEUE_STREAM_KEY="s",
        REDIS_QUEUE_APPLICATION_ID="g",
        REDIS_QUEUE_CONSUMER_ID="c",
        DEPEG_PRODUCT_ADDRESS=PRODUCT.lower(),
    )
    assert settings.redis_url == "redis://cache:6380/1"
    assert settings.max_non_ack_pending == 3
    assert (settings.balance_too_low_timeout, settings.error_timeout) == (1.5, 0.25)
    assert settings.port == 8080
    assert (settings.stream_key, settings.group, settings.consumer) == ("s", "g", "c")
    assert settings.product_address == PRODUCT  # lower case is checksummed


@pytest.mark.parametrize(
    "name", ["CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS", "CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS"]
)
def test_confirmations_accept_both_spellings(name: str) -> None:
    assert load(**{name: "12"}).min_confirmations == 12


def test_the_deployed_misspelling_wins_when_both_are_set() -> None:
    settings = load(
        CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS="3", CHAIN_MINIMUM_REQUIRED_CONFIRMATIONS="9"
    )
    assert settings.min_confirmations == 3


@pytest.mark.parametrize(
    "text, wei",
    [
        ("30 gwei", 30 * 10**9),
        ("2ether", 2 * 10**18),
        ("1.5 gwei", 1_500_000_000),
        ("123", 123),
        ("7 WEI", 7),
    ],
)
def test_wei_amounts_accept_units(text: str, wei: int) -> None:
    assert load(MAX_FEE_PER_GAS=text).max_fee_per_gas == wei


@pytest.mark.parametrize("text", ["30 gwie", "0.5 wei", "-1", "lots"])
def test_bad_wei_amount_names_the_variable(text: str) -> None:
    assert refusal(MAX_FEE_PER_GAS=text).name == "MAX_FEE_PER_GAS"


@pytest.mark.parametrize(
    "node_env, log_level, expected",
    [
        ("production", None, "INFO"),
        ("development", None, "DEBUG"),
        (None, None, "DEBUG"),
        ("production", "warning", "WARNING"),
        (None, "error", "ERROR"),
    ],
)
def test_log_level_follows_node_env_unless_overridden(node_env, log_level, expected) -> None:
    values = {k: v for k, v in (("NODE_ENV", node_env), ("LOG_LEVEL", log_level)) if v}
    assert load(**values).log_level == expected


def test_missing_rpc_url_names_it() -> None:
    repository = DictRepository({k: v for k, v in REQUIRED.items() if k != "CHAIN_RPC_URL"})
    with pytest.raises(ConfigError, match="^CHAIN_RPC_URL: .*required"):
        load_settings(Config(repository))


@pytest.mark.parametrize(
    "value",
    [
        "0x1234",
        "5FbDB2315678afecb367f032d93F642f64180aa3x",
        "product",
        "0x5FbDB2315678afecb367f032d93F642f64180aZ3",
    ],
)
def test_malformed_product_address_names_it(value: str) -> None:
    error = refusal(DEPEG_PRODUCT_ADDRESS=value)
    assert error.name == "DEPEG_PRODUCT_ADDRESS"
    assert str(error).startswith("DEPEG_PRODUCT_ADDRESS: ")


def test_badly_checksummed_product_address_is_refused() -> None:
    # the deployed address with one letter's case flipped: a typo the checksum exists to catch
    error = refusal(DEPEG_PRODUCT_ADDRESS="0x5fbDB2315678afecb367f032d93F642f64180aa3")
    assert error.name == "DEPEG_PRODUCT_ADDRESS"


def test_alert_balance_below_min_balance_is_refused() -> None:
    error = refusal(PROCESSOR_MIN_BALANCE="2 ether", PROCESSOR_ALERT_BALANCE="1 ether")
    assert error.name == "PROCESSOR_ALERT_BALANCE"
    assert "PROCESSOR_MIN_BALANCE" in str(error)


def test_alert_balance_equal_to_min_balance_is_accepted() -> None:
    settings = load(PROCESSOR_MIN_BALANCE="2 ether", PROCESSOR_ALERT_BALANCE="2 ether")
    assert settings.alert_balance == settings.min_balance == 2 * 10**18


def test_priority_fee_above_max_fee_is_refused() -> None:
    assert (
        refusal(MAX_FEE_PER_GAS="10 gwei", MAX_PRIORITY_FEE_PER_GAS="11 gwei").name
        == "MAX_PRIORITY_FEE_PER_GAS"
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "70000"),
        ("ERROR_TIMEOUT", "-5"),
        ("CHAIN_RPC_URL", "ws://node"),
        ("REDIS_URL", "localhost"),
        ("CHAIN_RPC_MAX_BATCH", "0"),
        ("CHAIN_RPC_MAX_BATCH", "ten"),
    ],
)
def test_other_bad_values_name_their_variable(name: str, value: str) -> None:
    assert refusal(**{name: value}).name == name


def words_in(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize(
    "mnemonic",
    [
        "abandon " * 11 + "abandon",  # real words, wrong checksum
        "correct horse battery staple zebrafish quokka marmot tundra",  # not BIP-39 at all
    ],
)
def test_bad_mnemonic_is_refused_without_echoing_it(mnemonic: str) -> None:
    error = refusal(PROCESSOR_MNEMONIC=mnemonic)
    assert error.name == "PROCESSOR_MNEMONIC"
    assert not words_in(str(error)) & set(mnemonic.split())
    assert error.__cause__ is None and error.__suppress_context__


def test_mnemonic_file_is_read_and_normalised(tmp_path) -> None:
    path = tmp_path / "mnemonic"
    path.write_text("  " + MNEMONIC.replace(" ", "\n  ") + "\n", encoding="utf-8")
    values = {k: v for k, v in REQUIRED.items() if k != "PROCESSOR_MNEMONIC"}
    settings = load_settings(
        Config(DictRepository({**values, "PROCESSOR_MNEMONIC_FILE": str(path)}))
    )
    assert settings.mnemonic == MNEMONIC


def test_bad_mnemonic_file_content_is_refused_without_echoing_it(tmp_path) -> None:
    secret = "abandon " * 11 + "abandon"
    path = tmp_path / "mnemonic"
    path.write_text(secret, encoding="utf-8")
    error = refusal(PROCESSOR_MNEMONIC_FILE=str(path))
    assert error.name == "PROCESSOR_MNEMONIC_FILE"
    assert "abandon" not in str(error)


def test_unreadable_mnemonic_file_names_the_variable(tmp_path) -> None:
    assert (
        refusal(PROCESSOR_MNEMONIC_FILE=str(tmp_path / "absent")).name == "PROCESSOR_MNEMONIC_FILE"
    )


def test_repr_does_not_reveal_the_mnemonic() -> None:
    settings = load()
    assert settings.mnemonic == MNEMONIC
    assert "junk" not in repr(settings) and "junk" not in str(settings)
    assert "mnemonic=" not in repr(settings) and MNEMONIC not in repr(settings)
    assert settings.signer == "mnemonic"  # the signer's name is shown, not its key


def test_a_list_of_rpc_urls_is_the_providers_in_order_of_preference() -> None:
    settings = load(CHAIN_RPC_URL="https://a.test/v3/KEY-A, http://b.test:8545")
    assert settings.chain_rpc_urls == ("https://a.test/v3/KEY-A", "http://b.test:8545")
    assert "KEY-A" not in repr(settings)


def test_a_bad_url_in_the_list_is_named_by_its_place_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"^CHAIN_RPC_URL: .*URL #1 of the list") as raised:
        load(CHAIN_RPC_URL="https://a.test/KEY-A,wss://b.test/KEY-B")
    assert "KEY" not in str(raised.value)


def test_with_nothing_set_every_required_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(Config(DictRepository({})))
    assert caught.value.lines() == [
        "CHAIN_RPC_URL: is required but not set",
        "DEPEG_PRODUCT_ADDRESS: is required but not set",
        "PROCESSOR_MNEMONIC: is required but not set",
    ]
    assert caught.value.name == "CHAIN_RPC_URL"
    assert str(caught.value).splitlines() == caught.value.lines()


def test_every_bad_variable_is_named_on_its_own_line_without_a_secret() -> None:
    secret = "abandon " * 11 + "abandon"
    error = refusal(PROCESSOR_MNEMONIC=secret, MAX_FEE_PER_GAS="abc", PORT="70000")
    lines = error.lines()
    assert [line.split(":")[0] for line in lines] == [
        "PROCESSOR_MNEMONIC",
        "MAX_FEE_PER_GAS",
        "PORT",
    ]
    assert lines[0] == "PROCESSOR_MNEMONIC: is not valid"
    assert lines[1].startswith("MAX_FEE_PER_GAS: 'abc' is not valid: ")
    assert "abandon" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_a_bad_value_and_a_broken_rule_between_two_are_both_named() -> None:
    error = refusal(
        REDIS_URL="localhost",
        PROCESSOR_MIN_BALANCE="2 ether",
        PROCESSOR_ALERT_BALANCE="1 ether",
        REDIS_QUEUE_DEAD_LETTER_KEY="application:signatures",
    )
    assert [line.split(":")[0] for line in error.lines()] == [
        "REDIS_URL",
        "PROCESSOR_ALERT_BALANCE",
        "REDIS_QUEUE_DEAD_LETTER_KEY",
    ]


def test_a_rule_between_two_is_not_judged_when_one_of_them_is_bad() -> None:
    error = refusal(MAX_FEE_PER_GAS="lots", MAX_PRIORITY_FEE_PER_GAS="11 gwei")
    assert error.lines() == [error.lines()[0]] and error.name == "MAX_FEE_PER_GAS"


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("PROCESSOR_LEASE_TTL", "999", "must be at least 1000 ms"),
        ("RECEIPT_POLL_INTERVAL", "0", "must be above zero"),
        ("CHAIN_IDLE_POLL_INTERVAL", "0", "must be above zero"),
        ("MAX_FEE_PER_GAS", "0", "must be above zero"),
        ("REDIS_READ_COUNT", "0", "must be at least 1"),
        ("TX_STUCK_BLOCKS", "0", "must be at least 1"),
        ("REDIS_QUEUE_MAX_DELIVERIES", "0", "must be at least 1"),
        ("REDIS_URL", "http://cache", "must be a redis://, rediss:// or unix:// URL"),
    ],
)
def test_bounds_name_the_variable_and_the_bound(name: str, value: str, problem: str) -> None:
    assert str(refusal(**{name: value})) == f"{name}: {problem}"


def test_an_empty_required_variable_is_named() -> None:
    assert str(refusal(DEPEG_PRODUCT_ADDRESS=" ")) == "DEPEG_PRODUCT_ADDRESS: is set but empty"


def test_empty_optional_variables_are_unset() -> None:
    settings = load(MAX_PRIORITY_FEE_PER_GAS="", MAX_GAS_SPEND_PER_HOUR=" ", NODE_ENV="")
    assert settings.max_priority_fee_per_gas is None and settings.max_gas_spend_per_hour is None
    assert settings.node_env == "" and settings.log_level == "DEBUG"


def test_settings_built_in_code_take_the_tables_defaults() -> None:
    from depeg_processor.config import Settings
    from depeg_processor.consumer.config import ConsumerConfig

    settings = Settings(chain_rpc_url="http://node.test", product_address=PRODUCT, mnemonic="m")
    assert settings == dataclasses.replace(load(), chain_rpc_url="http://node.test", mnemonic="m")
    consumer = ConsumerConfig(
        chain_id=1,
        message_helper=PRODUCT,
        min_balance=0,
        read_count=1,
        read_block=0.0,
        balance_too_low_timeout=0.0,
        error_timeout=0.0,
        max_deliveries=1,
    )
    assert (consumer.max_in_flight, consumer.in_flight_poll) == (64, 2.0)
