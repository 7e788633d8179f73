""".env.example and docs/configuration.md are the settings table's, as `make settings-docs`
writes them: every variable the loader reads, at the default it applies, and no secret's value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from decouple import Config

from depeg_processor import config_docs
from depeg_processor.config import check_mnemonic, load_settings
from depeg_processor.config_table import TABLE
from devnet.nodes import clean_env
from tests.unit.test_config import MNEMONIC, REQUIRED, VARIABLES, DictRepository

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^#\s?([A-Z][A-Z0-9_]+)=(.*)$", re.MULTILINE)
PAGE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \| ([^|]*) \|", re.MULTILINE)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-decouple looks at the environment before the repository."""
    for name in {*VARIABLES, *example()}:
        monkeypatch.delenv(name, raising=False)


def example() -> dict[str, str]:
    return dict(LINE.findall((ROOT / ".env.example").read_text()))


def page() -> str:
    return (ROOT / "docs" / "configuration.md").read_text()


def names_the_loader_reads() -> set[str]:
    """Every name one start asks python-decouple for: the loader reads every row, its file
    variant and (its main name unset) its other spelling."""
    repository = DictRepository(dict(REQUIRED))
    load_settings(Config(repository))
    return repository.asked


@pytest.mark.parametrize("path", sorted(config_docs.generated(), key=str))
def test_the_committed_file_is_the_generated_one(path: Path) -> None:
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == config_docs.generated()[path], f"{path} is out of date: make settings-docs"


def test_every_variable_the_loader_reads_is_listed() -> None:
    missing = names_the_loader_reads() - set(example())
    assert not missing, f"add to the table: {sorted(missing)}"


def test_nothing_is_listed_that_the_loader_does_not_read() -> None:
    stale = set(example()) - names_the_loader_reads()
    assert not stale, f"not read by config.load_settings: {sorted(stale)}"


def test_the_page_documents_every_variable_once() -> None:
    names = [name for name, _, _ in PAGE_ROW.findall(page())]
    assert sorted(names) == sorted(names_the_loader_reads())


def test_the_listed_defaults_are_the_defaults() -> None:
    listed = {
        name: value for name, value in example().items() if value.strip() and name not in REQUIRED
    }
    assert listed, "the example lists defaults"
    assert load_settings(Config(DictRepository({**REQUIRED, **listed}))) == load_settings(
        Config(DictRepository(dict(REQUIRED)))
    )


def test_the_documented_defaults_are_the_listed_ones() -> None:
    for name, _, shown in PAGE_ROW.findall(page()):
        listed = example()[name]
        if shown.strip() in ("required", "unset"):
            assert name in REQUIRED or not listed, name
        else:
            assert shown.strip().startswith(f"`{listed}`") or not listed, name


def test_the_mnemonic_is_a_placeholder() -> None:
    with pytest.raises(ValueError):
        check_mnemonic(example()["PROCESSOR_MNEMONIC"])


def test_secrets_are_marked_and_shown_without_a_value() -> None:
    secrets = {setting.name for setting in TABLE if setting.secret}
    assert secrets == {
        "CHAIN_RPC_URL",
        "CHAIN_SEND_URL",
        "PROCESSOR_MNEMONIC",
        "PROCESSOR_KEYSTORE_PASSWORD",
        "PROCESSOR_PKCS11_PIN",
    }
    kinds = {name: kind for name, kind, _ in PAGE_ROW.findall(page())}
    for name in secrets:
        assert kinds[name].endswith(", secret"), name
    assert example()["PROCESSOR_MNEMONIC_FILE"] == ""
    assert example()["PROCESSOR_KEYSTORE_PASSWORD"] == example()["PROCESSOR_PKCS11_PIN"] == ""
    for word in set(MNEMONIC.split()):
        assert not re.search(rf"\b{word}\b", (ROOT / ".env.example").read_text()), word


def test_the_tests_clean_environment_drops_every_variable(monkeypatch) -> None:
    names = names_the_loader_reads()
    for name in names:
        monkeypatch.setenv(name, "x")
    assert not names & set(clean_env())
