"""podman as `make check-deploy` drives it: its own image store, the project's containers.conf,
and a base image made from Debian packages when no registry is reachable.

The store lives in a cache directory of its own (`--root`), so the check neither sees nor
changes the machine's other images, and a cold run is that directory removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_PYTHON = "python3,python3-pip,python-is-python3,ca-certificates"


class CommandFailed(RuntimeError):
    """A podman (or mmdebstrap) command exited non-zero; carries its command and output."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess) -> None:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        super().__init__(f"{' '.join(args[:6])} ... exited {result.returncode}:\n{tail}")
        self.result = result


class Podman:
    """Runs podman with the check's store and settings."""

    def __init__(self, *, store: Path, conf: Path = CONTAINERS_CONF) -> None:
        self.store = store
        self.env = os.environ | {"CONTAINERS_CONF": str(conf)}
        self.prefix = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run")]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.prefix, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise CommandFailed(args, result)
        return result

    def image_exists(self, tag: str) -> bool:
        return self("image", "exists", tag, check=False).returncode == 0

    def image_size(self, tag: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", tag).stdout)

    def inspect(self, name: str) -> dict:
        return json.loads(self("inspect", name).stdout)[0]

    def build(
        self, *, context: Path, target: str, tag: str, base: str
    ) -> subprocess.CompletedProcess:
        """`--format docker` keeps the HEALTHCHECK (the OCI format drops it); pip inside the
        build reaches PyPI with the host's CA bundle."""
        return self(
            "build",
            "--format",
            "docker",
            "--pull=never",
            "--build-arg",
            f"BASE={base}",
            "--volume",
            f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "--target",
            target,
            "--tag",
            tag,
            str(context),
        )


def make_base(podman: Podman, tag: str) -> float:
    """A Python 3.11 base image from Debian bookworm's packages, tagged `tag`; pip may install
    into it (no EXTERNALLY-MANAGED marker), as into python:3.11-slim. Returns the seconds it
    took, 0 when the store already had it."""
    if podman.image_exists(tag):
        return 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depeg-base-") as directory:
        rootfs = Path(directory) / "rootfs.tar"
        args = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={DEBIAN_PYTHON}",
            '--customize-hook=rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',
            "bookworm",
            str(rootfs),
        ]
        result = subprocess.run(args, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise CommandFailed(args, result)
        podman("import", str(rootfs), tag)
    return time.monotonic() - started


def copy_context(destination: Path) -> Path:
    """The build context without what .dockerignore leaves out anyway (and would cost time to
    copy), for a build from changed files."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "tests", "bench", "build", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, destination, ignore=skip, symlinks=True)
    return destination
