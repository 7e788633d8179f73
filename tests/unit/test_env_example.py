""".env.example lists every variable config.py reads, with the defaults config.py applies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from decouple import Config

from depeg_processor.config import check_mnemonic, load_settings
from tests.unit.test_config import REQUIRED, VARIABLES, DictRepository

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^#\s?([A-Z][A-Z0-9_]+)=(.*)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-decouple looks at the environment before the repository."""
    for name in {*VARIABLES, *example()}:
        monkeypatch.delenv(name, raising=False)


def example() -> dict[str, str]:
    return dict(LINE.findall((ROOT / ".env.example").read_text()))


def names_config_reads() -> set[str]:
    """What one start asks for, and every variable-like literal in config.py (a variable read
    only on some path is still found)."""
    repository = DictRepository(dict(REQUIRED))
    load_settings(Config(repository))
    source = (ROOT / "depeg_processor" / "config.py").read_text()
    return repository.asked | set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', source))


def test_every_variable_config_reads_is_listed() -> None:
    missing = names_config_reads() - set(example())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_nothing_is_listed_that_config_does_not_read() -> None:
    stale = set(example()) - names_config_reads()
    assert not stale, f"not read by config.py: {sorted(stale)}"


def test_the_listed_defaults_are_the_defaults() -> None:
    listed = {
        name: value for name, value in example().items() if value.strip() and name not in REQUIRED
    }
    assert load_settings(Config(DictRepository({**REQUIRED, **listed}))) == load_settings(
        Config(DictRepository(dict(REQUIRED)))
    )


def test_the_mnemonic_is_a_placeholder() -> None:
    with pytest.raises(ValueError):
        check_mnemonic(example()["PROCESSOR_MNEMONIC"])
