"""The runtime image at work, for `make check-deploy`: the container on the host's loopback
network against a redis-server and an anvil with the real depeg product, a Prometheus server
scraping it.

What it shows: the secret-file recipe (a root-only file is refused, one owned by uid 10001 is
read), the process runs as uid 10001 from the installed package, applications made the web
app's way are confirmed, the HEALTHCHECK passes, /api/monitor answers 200, every metric the
alert rules and the dashboard use is served and each dashboard query has data (after a spell
of rate limiting, a node outage and a Redis restart, so the error panels have some), and
`podman stop` ends it with exit code 0 within the stop timeout.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from devnet import prometheus as prom
from devnet.nodes import ROOT, TEST_MNEMONIC, Anvil, RedisServer, free_port
from devnet.podman import Podman
from devnet.proxy import RpcProxy, TokenBucket
from devnet.scenario import CHAIN_ID, Scenario, set_up
from devnet.secrets_check import main as secrets_check

Step = Callable[[str], AbstractContextManager]
GOOD, LATE = 4, 2  # applications before, and while the node rate-limits
UID = 10001
STOP_TIMEOUT = 20  # the systemd units' TimeoutStopSec
SECRET = "/run/secrets/processor_mnemonic"
LOG = ROOT / "build" / "check-deploy" / "processor.log"  # the container's log, kept to read


class CheckFailed(Exception):
    """A deployment artefact does not do what it must; says what was seen."""


def require(condition: object, seen: object) -> None:
    if not condition:
        raise CheckFailed(str(seen))


def wait(predicate: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def counted(text: str, name: str, label: str) -> float:
    """The sum of a counter's samples whose labels contain `label` (e.g. 'kind="RateLimited"')."""
    pattern = re.compile(rf"^{name}\{{[^}}]*{re.escape(label)}[^}}]*\}} (\S+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


def secret_file(path: Path, *, owner: int, mode: int) -> Path:
    path.write_text(TEST_MNEMONIC + "\n")
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


def check_secret_recipe(podman: Podman, image: str, directory: Path, env: dict) -> Path:
    """The old README's recipe (chmod 600, owned by root) fails; a podman secret given to uid
    10001 is read. Returns a file owned by uid 10001, mode 0400, for the service to run with."""
    refused = secret_file(directory / "root-only", owner=0, mode=0o600)
    result = podman(
        *("run", "--rm", "--network", "host", "-v", f"{refused}:{SECRET}:ro"),
        *("-e", f"PROCESSOR_MNEMONIC_FILE={SECRET}", image, "check-config"),
        check=False,
    )
    output = result.stdout + result.stderr
    require(result.returncode != 0 and "cannot be read" in output, output)
    require(TEST_MNEMONIC not in output, "check-config printed the mnemonic")
    print(f"   a root-only file is refused: {output.strip().splitlines()[-1]}")
    name = f"check-mnemonic-{os.getpid()}"
    podman("secret", "create", name, str(refused))
    try:
        result = podman(
            *("run", "--rm", "--network", "host", "--secret", f"{name},uid={UID},mode=0400"),
            *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
            *("--env", f"PROCESSOR_MNEMONIC_FILE=/run/secrets/{name}", image, "check-config"),
        )
    finally:
        podman("secret", "rm", name, check=False)
    require(TEST_MNEMONIC not in result.stdout + result.stderr, "check-config printed it")
    print(f"   a podman secret for uid {UID}: {result.stdout.strip().splitlines()[0]}")
    return secret_file(directory / "mnemonic", owner=UID, mode=0o400)


def check_process(podman: Podman, container: str) -> None:
    """The service's process: its uid, its command line, where its package comes from."""
    probe = (
        "import os, depeg_processor; "
        "print(os.stat('/proc/1').st_uid, open('/proc/1/cmdline').read().replace(chr(0), ' '), "
        "depeg_processor.__file__, os.getcwd(), sorted(os.listdir('.')))"
    )
    out = podman("exec", container, "python", "-c", probe).stdout.strip()
    uid, rest = out.split(" ", 1)
    require(int(uid) == UID, out)
    require("/opt/venv/bin/depeg-processor run" in rest, out)
    require("/opt/venv/lib/python3.11/site-packages/depeg_processor/" in rest, out)
    require(rest.endswith("/app ['app.json']"), out)
    print(f"   pid 1: uid {uid}, {rest}")


def provoke_errors(
    port: int, proxy: RpcProxy, redis_server: RedisServer, apply: Callable[[], list[str]]
) -> list[str]:
    """Rate limiting while applications arrive (`apply`), a node outage, a Redis outage: each
    until /metrics counts it. Returns the applications `apply` made."""

    def metric(name: str, label: str) -> Callable[[], bool]:
        return lambda: counted(get(port, "/metrics")[1], name, label) > 0

    started = time.monotonic()

    def done(what: str) -> None:
        print(f"   {what} after {time.monotonic() - started:.1f} s")

    proxy.bucket = TokenBucket(1, time.monotonic)
    made = apply()
    wait(metric("depeg_processor_rpc_errors_total", 'kind="RateLimited"'), "a RateLimited", 30)
    done("2 applications made, the node's rate limit counted")
    proxy.bucket = None
    proxy.stop()
    wait(metric("depeg_processor_rpc_errors_total", 'kind="NodeUnavailable"'), "an outage", 30)
    done("node down, counted")
    proxy.start()
    redis_server.halt()
    wait(metric("depeg_processor_redis_errors_total", "kind="), "a Redis error", 30)
    done("node back, Redis down, counted")
    redis_server.start()
    wait(lambda: get(port, "/api/monitor")[0] == 200, "/api/monitor 200 after the outages", 60)
    done("Redis back, /api/monitor 200")
    return made


def check_prometheus(prometheus: prom.PrometheusServer, port: int) -> None:
    """The names the rules and dashboard use are served; each dashboard query has data."""
    wait(prometheus.scrapes_up, "Prometheus's scrape of the processor", 30)
    queries = prom.dashboard_queries()
    used = prom.used_metrics(prom.rule_expressions() + [query for _, query in queries])
    missing = used - prom.exported_metrics(get(port, "/metrics")[1])
    require(not missing, f"used by the rules or the dashboard, not in /metrics: {missing}")
    print(f"   {len(used)} metrics used by the rules and the dashboard, all in /metrics")
    for title, query in queries:
        wait(lambda q=query: prometheus.query(q), f"data for {title!r}: {query}", 30)
    print(f"   {len(queries)} dashboard queries answered with data")
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    broken = [r["name"] for r in rules if r["health"] != "ok"]
    require(len(rules) == len(prom.rule_expressions()) and not broken, broken or rules)
    firing = sorted({r["name"] for r in rules if r["state"] != "inactive"})
    print(f"   {len(rules)} alert rules evaluated without error; pending or firing: {firing}")


def confirmed(scenario: Scenario, entity_ids: list[str], *, policies: int) -> None:
    """The applications purged, the product holding `policies` policies, one dead letter."""
    client = scenario.client
    wait(
        lambda: not any(client.exists(f"PendingApplication:{e}") for e in entity_ids),
        f"{len(entity_ids)} applications confirmed or set aside, and purged",
    )
    found = scenario.depeg.product.functions.policies().call()
    letters = client.xlen("application:signatures:dead")
    require((found, letters) == (policies, 1), f"{found} policies, {letters} dead letters")


def check_health(podman: Podman, container: str) -> None:
    result = podman("healthcheck", "run", container, check=False)
    require(result.returncode == 0, result.stdout + result.stderr)
    print(f"   {result.stdout.strip() or 'healthy'}")


def check_running_image(podman: Podman, image: str, step: Step) -> None:
    with RedisServer(persistent=True) as redis_server, Anvil(chain_id=CHAIN_ID) as anvil:
        with step("real product deployed, applications made the web app's way"):
            scenario = set_up(anvil, redis_server.url, applications=GOOD + LATE)
            first = [*scenario.apply(GOOD), scenario.apply_without_allowance()]
            anvil.rpc("anvil_setIntervalMining", 1)
        with RpcProxy(anvil.url) as proxy, tempfile.TemporaryDirectory() as directory:
            env = {
                "REDIS_URL": redis_server.url,
                "CHAIN_RPC_URL": proxy.url,
                "DEPEG_PRODUCT_ADDRESS": scenario.depeg.product.address,
                "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS": "2",
                "RECEIPT_POLL_INTERVAL": "500",
            }
            with step("secret file recipe"):
                secret = check_secret_recipe(podman, image, Path(directory), env)
            port = free_port()
            container = f"depeg-check-{port}"
            env |= {"PROCESSOR_MNEMONIC_FILE": SECRET, "PORT": str(port)}
            with prom.PrometheusServer([f"127.0.0.1:{port}"]) as prometheus:
                try:
                    _run(podman, image, container, env, secret, port, step)
                    with step("applications confirmed, one set aside"):
                        confirmed(scenario, first, policies=GOOD)
                        print(f"   {GOOD} policies on chain, 1 dead letter (no allowance)")
                    with step("HEALTHCHECK (podman healthcheck run)"):
                        check_health(podman, container)
                    with step("rate limiting, a node outage, a Redis restart"):
                        late = provoke_errors(
                            port, proxy, redis_server, lambda: scenario.apply(LATE)
                        )
                        confirmed(scenario, late, policies=GOOD + LATE)
                        print(f"   {LATE} more policies on chain after the outages")
                    with step("Prometheus scraping the container"):
                        check_prometheus(prometheus, port)
                    with step(f"podman stop (timeout {STOP_TIMEOUT} s)"):
                        _stop(podman, container)
                finally:
                    podman("rm", "--force", "--time", "0", container, check=False)


def _run(
    podman: Podman, image: str, container: str, env: dict, secret: Path, port: int, step: Step
) -> None:
    with step("container started, /api/monitor 200"):
        podman(
            *("run", "--detach", "--name", container, "--network", "host"),
            *("--stop-timeout", str(STOP_TIMEOUT), "--volume", f"{secret}:{SECRET}:ro"),
            *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
            image,
        )
        wait(lambda: get(port, "/api/monitor")[0] == 200, "/api/monitor 200", 60)
        print(f"   GET /api/monitor -> 200 {get(port, '/api/monitor')[1].strip()}")
    with step("runs as uid 10001 from the installed package"):
        check_process(podman, container)


def _stop(podman: Podman, container: str) -> None:
    started = time.monotonic()
    podman("stop", "--time", str(STOP_TIMEOUT), container, timeout=STOP_TIMEOUT + 30)
    took = time.monotonic() - started
    state = podman.inspect(container)["State"]
    logs = podman("logs", container)
    require(state["ExitCode"] == 0, state)
    require(took < STOP_TIMEOUT, f"stop took {took:.1f} s")
    late = [line for line in logs.stderr.splitlines() if "did not stop" in line]
    require(not late, f"a thread outlived the shutdown: {late}")
    print(f"   exit code 0 after {took:.1f} s; {len(logs.stderr.splitlines())} log lines")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text(logs.stdout + logs.stderr)
    require(secrets_check([str(LOG)]) == 0, "the container's log holds a secret")
