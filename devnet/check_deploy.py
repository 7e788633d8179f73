"""`make check-deploy`: every deployment artefact, proven for real on this machine.

The image (both targets) built with podman from a base made of Debian packages, rebuilt after
a code and README change from its cached dependency layer, run against a redis-server, an
anvil with the real product and a Prometheus server (`devnet.image_check`); the devnet target
deploying the test double; the compose file and the systemd units as `make test` checks them,
with the tools present; the alert rules through `promtool check rules` and `promtool test
rules`. Prints each step's time and the image's size. Run as root: it installs the Debian
packages it needs when they are missing, and runs podman rootful on the loopback network.

    python -m devnet.check_deploy [--cold]     (--cold: start from an empty image store)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devnet import prometheus as prom
from devnet.image_check import CheckFailed, check_running_image, require
from devnet.nodes import ROOT, Anvil
from devnet.podman import CommandFailed, Podman, copy_context, make_base

BASE = "localhost/depeg-check-base:bookworm"
IMAGE = "localhost/depeg-backend-processor:check"
DEVNET_IMAGE = "localhost/depeg-devnet:check"
TEST_DOUBLE = "0x8464135c8F25Da09e49BC8782676a84730C318bC"  # docker-compose.yml's address
TOOLS = {  # command: the Debian package that has it
    "podman": "podman",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "docker-compose": "docker-compose",
    "systemd-analyze": "systemd",
}
REBUILD_LIMIT = 60.0  # seconds: "a code or README change rebuilds in seconds"


class Steps:
    """Times each step and prints it; the summary at the end lists them all."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.started = time.monotonic()
        self.current: str | None = None  # the step under way, named when it fails

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"-- {name}", flush=True)
        started, self.current = time.monotonic(), name
        yield
        took, self.current = time.monotonic() - started, None
        self.times.append((name, took))
        print(f"   ok, {took:.1f} s", flush=True)

    def summary(self) -> str:
        lines = [f"{took:7.1f} s  {name}" for name, took in self.times]
        total = time.monotonic() - self.started
        return "\n".join([*lines, f"{total:7.1f} s  in all"])


def install_tools() -> list[str]:
    """apt-get install what is missing (root only); the packages it installed."""
    packages = sorted({TOOLS[tool] for tool in TOOLS if not shutil.which(tool)})
    if not packages:
        return []
    if os.geteuid() != 0:
        raise SystemExit(
            f"check-deploy: missing {packages}: apt-get install -y {' '.join(packages)}"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return packages


def build(podman: Podman, context: Path, target: str, tag: str) -> str:
    return podman.build(context=context, target=target, tag=tag, base=BASE).stdout


def rebuild_after_a_change(podman: Podman) -> float:
    """Build from a copy of the context with a line added to the README and to the code: the
    dependency layer comes from the cache and the build takes seconds."""
    with tempfile.TemporaryDirectory(prefix="depeg-context-") as directory:
        context = copy_context(Path(directory) / "context")
        for name in ("README.md", "depeg_processor/__init__.py"):
            with (context / name).open("a") as file:
                file.write(
                    "\n# changed for the rebuild check\n" if name.endswith(".py") else "\nchanged\n"
                )
        started = time.monotonic()
        output = build(podman, context, "runtime", f"{IMAGE}-rebuild")
        took = time.monotonic() - started
    podman("rmi", f"{IMAGE}-rebuild", check=False)
    lines = output.splitlines()
    found = [i for i, line in enumerate(lines) if "RUN" in line and "runtime.txt" in line]
    require(found, f"no dependency step in the build's output:\n{output}")
    require("Using cache" in lines[found[0] + 1], "\n".join(lines[found[0] : found[0] + 3]))
    require(took < REBUILD_LIMIT, f"the rebuild took {took:.1f} s")
    return took


LEFTOVERS_PROBE = """
import glob, json, subprocess, sys
found = [p for p in ("/src", "/app/build", "/tmp/wheels") if glob.glob(p)]
found += glob.glob("/opt/venv/**/*.egg-info", recursive=True) + glob.glob("/app/*.egg-info")
probe = (
    "import importlib.util as u, json; "
    "print(json.dumps([m for m in ('pip', 'setuptools', 'wheel') if u.find_spec(m)]))"
)
for python in (sys.executable, sys._base_executable):
    found += json.loads(subprocess.run([python, "-c", probe], capture_output=True).stdout)
print(found)
"""


def check_no_leftovers(podman: Podman) -> None:
    """No build directory, egg-info or wheel left, and neither the service's interpreter nor
    the base's can import pip, setuptools or wheel."""
    result = podman("run", "--rm", "--entrypoint", "python", IMAGE, "-c", LEFTOVERS_PROBE)
    require(result.stdout.strip() == "[]", result.stdout + result.stderr)
    print("   no /src, build/, *.egg-info; no pip, setuptools or wheel in either interpreter")


def check_deployment_files() -> None:
    """tests/unit/test_deployment_files.py, none skipped: docker-compose config -q and
    systemd-analyze verify of both units run here."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_deployment_files.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1]
    require(result.returncode == 0 and "skipped" not in summary, result.stdout + result.stderr)
    print(f"   {summary}")


def check_devnet_image(podman: Podman) -> None:
    """The devnet target does what docker-compose.yml's `deploy` service asks of it."""
    with Anvil() as anvil:
        result = podman(
            "run",
            "--rm",
            "--network",
            "host",
            DEVNET_IMAGE,
            "python",
            "-m",
            "devnet.deploy",
            "--rpc",
            anvil.url,
        )
        require(anvil.rpc("eth_getCode", TEST_DOUBLE, "latest") not in ("0x", ""), result.stdout)
        print(f"   {result.stdout.strip()}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty the image store first")
    args = parser.parse_args(argv)
    steps = Steps()
    try:
        size = check_all(steps, cold=args.cold)
    except (CheckFailed, CommandFailed, RuntimeError) as error:
        failed = f"{steps.current!r}: " if steps.current else ""
        print(f"check-deploy FAILED in {failed}{error}\n{steps.summary()}", file=sys.stderr)
        return 1
    print(f"check-deploy passed; {IMAGE} is {size / 1e6:.0f} MB\n{steps.summary()}")
    return 0


def check_all(steps: Steps, *, cold: bool) -> int:
    """Every check in order; the runtime image's size."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    store = Path(os.environ.get("CHECK_DEPLOY_STORE") or cache / "depeg-check-deploy")
    with steps("Debian packages (podman, runc, mmdebstrap, prometheus)"):
        print(f"   installed: {install_tools() or 'nothing, all present'}")
    podman = Podman(store=store)
    if cold and store.exists():
        podman("system", "reset", "--force", check=False)
        shutil.rmtree(store, ignore_errors=True)
    with steps("base image from Debian packages (mmdebstrap, podman import)"):
        took = make_base(podman, BASE)
        print(f"   {BASE}: " + (f"made in {took:.1f} s" if took else "already in the store"))
    with steps("build the runtime target"):
        build(podman, ROOT, "runtime", IMAGE)
    with steps("build the devnet target"):
        build(podman, ROOT, "devnet", DEVNET_IMAGE)
    size = podman.image_size(IMAGE)
    print(f"   image size: {IMAGE} {size / 1e6:.0f} MB")
    with steps("runtime image: no build leftovers, no installers"):
        check_no_leftovers(podman)
    with steps("rebuild after a code and README change"):
        print(f"   rebuilt in {rebuild_after_a_change(podman):.1f} s, dependency layer cached")
    with steps("devnet image deploys the test double"):
        check_devnet_image(podman)
    with steps("compose file and systemd units"):
        check_deployment_files()
    with steps("promtool check rules, promtool test rules"):
        print("   " + prom.promtool("check", "rules", str(prom.RULES)).splitlines()[-1].strip())
        print("   " + prom.promtool("test", "rules", str(prom.RULE_TESTS)).splitlines()[-1].strip())
    check_running_image(podman, IMAGE, steps)
    return size


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
