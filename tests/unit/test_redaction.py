"""No secret in any log record, whichever logger makes it: messages, arguments, tracebacks,
stacks, uncaught exceptions in threads, in text and in JSON lines."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator

import pytest
import requests

from depeg_processor import redaction
from depeg_processor.logs import configure_logging
from depeg_processor.redaction import Redactor, url_secrets

KEY = "0123456789abcdef0123456789abcdef"
URL = f"https://mainnet.provider.test/v3/{KEY}?apikey=Q-{KEY}"
MNEMONIC = "test test test test test test test test test test test junk"
WALLET_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
def installed() -> Iterator[io.StringIO]:
    """The redaction installed as the entry point installs it, with text lines to read."""
    factory, hook, thread_hook = logging.getLogRecordFactory(), sys.excepthook, threading.excepthook
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(level="DEBUG", production=False, stream=stream)
    redaction.install(
        Redactor(
            urls=[URL, "redis://:hunter2hunter@redis:6379/0"], mnemonic=MNEMONIC, keys=[WALLET_KEY]
        )
    )
    yield stream
    logging.setLogRecordFactory(factory)
    sys.excepthook, threading.excepthook = hook, thread_hook
    root.handlers[:], root.level = handlers, level


def test_the_parts_beyond_scheme_and_host_are_secret() -> None:
    parts = url_secrets("https://user:pa%24%24word@host.test:8545/v3/abc%2Fdefgh?key=zyxwvut&x=1")
    assert {
        "/v3/abc%2Fdefgh",
        "abc%2Fdefgh",
        "abc/defgh",
        "zyxwvut",
        "pa%24%24word",
        "pa$$word",
    } <= parts
    assert not {"host.test", "https", "8545", "v3", "1"} & parts
    assert url_secrets("redis://redis:6379/0") == set(), "a database number is no secret"


def test_urllib3s_header_warning_names_no_key(installed) -> None:
    logging.getLogger("urllib3.connection").warning(
        "Failed to parse headers (url=%s): %s", URL, "[MissingHeaderBodySeparatorDefect()]"
    )
    text = installed.getvalue()
    assert "Failed to parse headers (url=https://mainnet.provider.test***?***)" in text
    assert KEY not in text


def test_a_traceback_names_no_key(installed) -> None:
    try:
        raise requests.ConnectionError(f"Max retries exceeded with url: /v3/{KEY}")
    except requests.ConnectionError:
        logging.getLogger("anything").exception("call failed")
    text = installed.getvalue()
    assert "Traceback" in text and "Max retries exceeded with url: ***" in text
    assert KEY not in text


def test_json_lines_name_no_secret_in_message_or_traceback() -> None:
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(level="INFO", production=True, stream=stream)
    redaction.install(Redactor(urls=[URL], mnemonic=MNEMONIC, keys=[WALLET_KEY]))
    try:
        try:
            raise ValueError(f"key 0x{WALLET_KEY.upper()}")
        except ValueError:
            logging.getLogger("lib").error("from %s", URL, exc_info=True)
    finally:
        logging.setLogRecordFactory(factory)
        root.handlers[:], root.level = handlers, level
    text = stream.getvalue()
    assert '"exc_info"' in text and "ValueError: key 0x***" in text
    assert KEY not in text and WALLET_KEY not in text.lower()


def test_the_mnemonic_however_spaced_and_a_wallet_key_in_any_case(installed) -> None:
    spaced = MNEMONIC.replace(" ", "  \n ")
    logging.getLogger("x").info("words %s and key 0x%s", spaced, WALLET_KEY.upper())
    logging.getLogger("x").info("stack", stack_info=True, extra={})
    text = installed.getvalue()
    assert "words *** and key 0x***" in text
    assert "junk" not in text and WALLET_KEY not in text.lower()


def test_redis_password_but_not_short_parts(installed) -> None:
    logging.getLogger("redis").warning("lost redis://:hunter2hunter@redis:6379/0, path m/0'/0/0")
    text = installed.getvalue()
    assert "hunter2hunter" not in text and "redis:6379/0, path m/0'/0/0" in text


def test_a_record_whose_arguments_do_not_format(installed) -> None:
    logging.getLogger("bad").warning("%d items", URL)
    text = installed.getvalue()
    assert "%d items" in text and KEY not in text


def test_an_uncaught_exception_in_a_thread_is_logged_redacted(installed) -> None:
    def fail() -> None:
        raise RuntimeError(f"provider {URL} broke")

    thread = threading.Thread(target=fail, name="doomed")
    thread.start()
    thread.join()
    text = installed.getvalue()
    assert "uncaught exception in thread doomed" in text and "RuntimeError: provider" in text
    assert KEY not in text


def test_records_without_secrets_are_left_as_made(installed) -> None:
    made = logging.getLogRecordFactory()("n", logging.INFO, "f", 1, "a %s", ("b",), None)
    assert made.msg == "a %s" and made.args == ("b",)


def test_the_entry_point_masks_the_relays_url_too(installed) -> None:
    """CHAIN_SEND_URL carries a key as a provider URL does (Flashbots, MEV Blocker)."""
    from depeg_processor.__main__ import guard_secrets

    from .test_config import load

    relay_key = "relaykey0123456789"
    guard_secrets(load(CHAIN_SEND_URL=f"https://relay.example.test/{relay_key}"))
    logging.getLogger("urllib3.connection").warning(
        "Failed to parse headers (url=https://relay.example.test/%s)", relay_key
    )
    assert "relay.example.test" in installed.getvalue()
    assert relay_key not in installed.getvalue()


def test_the_entry_point_masks_a_keystores_password_and_a_tokens_pin(installed) -> None:
    from depeg_processor.__main__ import guard_secrets

    from .test_config import load

    settings = load(PROCESSOR_KEYSTORE_PASSWORD="hunter2-keystore")
    guard_secrets(settings)
    logging.getLogger("x").warning("opened with %s", "hunter2-keystore")
    assert "hunter2-keystore" not in installed.getvalue() and "opened with" in installed.getvalue()
