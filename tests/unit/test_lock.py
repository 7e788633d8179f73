"""The lock: requirements/lock.txt names every package the tests, the devnet tools and the image
install, with hashes; the image's files are parts of it. These checks read files and this
environment only, so they pass or fail the same on any day, whatever has been released since."""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


class Locked(NamedTuple):
    version: str
    hashes: frozenset[str]
    marker: str | None

    def applies_here(self) -> bool:
        return self.marker is None or Marker(self.marker).evaluate()


def read_lock(path: Path) -> dict[str, Locked]:
    """A `uv pip compile --generate-hashes` file: each pin with its marker and its hashes."""
    found: dict[str, Locked] = {}
    name = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            found[name] = Locked(match[2], frozenset(), match[3])
        elif name and (hashed := HASH.search(line)):
            entry = found[name]
            found[name] = entry._replace(hashes=entry.hashes | {hashed[1]})
    return found


def declared() -> dict[str, list[Requirement]]:
    """setup.cfg's install_requires and extras, and the tools the lock adds."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")

    def requirements(text: str) -> list[Requirement]:
        lines = (line.split("#")[0].strip() for line in text.splitlines())
        return [Requirement(line) for line in lines if line]

    return {
        "runtime": requirements(parser["options"]["install_requires"]),
        "devnet": requirements(parser["options.extras_require"]["devnet"]),
        "test": requirements(parser["options.extras_require"]["test"]),
        "tools": requirements((REQUIREMENTS / "tools.in").read_text()),
    }


LOCK = read_lock(REQUIREMENTS / "lock.txt")


def test_the_lock_reads_as_pins_with_hashes() -> None:
    """The parser below sees what is there: no pin without a hash, and a known package."""
    assert len(LOCK) > 30
    assert all(entry.hashes for entry in LOCK.values())
    assert LOCK["redis"].version == "8.1.0"


@pytest.mark.parametrize("part", ["runtime.txt", "devnet.txt"])
def test_the_image_installs_a_part_of_the_lock(part) -> None:
    """The image's files name no package, version or hash that the lock does not: the image
    runs what the tests ran."""
    image = read_lock(REQUIREMENTS / part)
    assert image, part
    for name, entry in image.items():
        assert name in LOCK, f"{part}: {name} is not in the lock"
        assert (entry.version, entry.hashes) == LOCK[name][:2], f"{part}: {name} differs"


@pytest.mark.parametrize(
    ("part", "groups"),
    [
        ("runtime.txt", ["runtime"]),
        ("devnet.txt", ["runtime", "devnet"]),
        ("lock.txt", ["runtime", "devnet", "test", "tools"]),
    ],
)
def test_each_file_holds_what_setup_cfg_asks(part, groups) -> None:
    locked = read_lock(REQUIREMENTS / part)
    for group in groups:
        for requirement in declared()[group]:
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{part} lacks {name} ({group})"
            assert requirement.specifier.contains(locked[name].version), f"{part}: {name}"


def test_the_runtime_part_holds_no_test_tool() -> None:
    runtime = read_lock(REQUIREMENTS / "runtime.txt")
    for tool in ("pytest", "ruff", "web3", "uv", "fakeredis"):
        assert tool not in runtime


def test_this_environment_is_the_lock() -> None:
    """Every locked package that applies to this platform is installed at its locked version,
    and nothing is installed that the lock does not name (the package itself and pip aside)."""
    installed = {
        canonicalize_name(distribution.metadata["Name"]): distribution.version
        for distribution in metadata.distributions()
    }
    for name, entry in LOCK.items():
        if entry.applies_here():
            assert installed.get(name) == entry.version, f"{name}: {installed.get(name)}"
    extra = set(installed) - set(LOCK) - {"depeg-backend-processor", "pip"}
    assert not extra, f"installed but not locked: {sorted(extra)}"
