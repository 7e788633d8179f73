"""The deployment files operators copy: the systemd unit and its template for replicas, the
compose file, the Dockerfile, Dokku's app.json."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "depeg-backend-processor.service"
TEMPLATE = ROOT / "deploy" / "depeg-backend-processor@.service"


def unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def lines(path: Path, key: str) -> list[str]:
    """Every value of a key that may repeat (configparser keeps only the last)."""
    return [
        line.split("=", 1)[1]
        for line in path.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def runnable_copy(path: Path, directory: Path) -> Path:
    """The unit under its own name in `directory`, its ExecStart pointed at this machine's
    python: verify also checks that ExecStart exists."""
    text = path.read_text().replace(
        "/opt/depeg-backend-processor/.venv/bin/python",
        shutil.which("python3") or "/usr/bin/python3",
    )
    copy = directory / path.name
    copy.write_text(text)
    return copy


def test_unit_is_notify_with_watchdog_and_restart_policy() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 60  # above PROCESSOR_QUEUE_LISTENER_LOOP_MAX_TIMEOUT
    assert service["Restart"] == "on-failure"
    assert "-m depeg_processor run" in service["ExecStart"]
    assert "PROCESSOR_MNEMONIC_FILE" in service["Environment"]


@pytest.mark.parametrize("path", [UNIT, TEMPLATE], ids=["unit", "template"])
def test_units_dump_no_core_and_keep_secrets_out_of_the_environment(path: Path) -> None:
    service = unit(path)["Service"]
    assert service["LimitCORE"] == "0"
    assert any(
        value.startswith("PROCESSOR_MNEMONIC_FILE=%d/") for value in lines(path, "Environment")
    )
    assert not any(
        value.startswith(
            ("PROCESSOR_MNEMONIC=", "PROCESSOR_KEYSTORE_PASSWORD=", "PROCESSOR_PKCS11_PIN=")
        )
        for value in lines(path, "Environment")
    )


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path) -> None:
    copy = runnable_copy(UNIT, tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_template_runs_the_same_service_with_a_port_per_instance() -> None:
    single, template = unit()["Service"], unit(TEMPLATE)["Service"]
    for key in (
        "Type",
        "NotifyAccess",
        "WatchdogSec",
        "Restart",
        "ExecStart",
        "User",
        "LoadCredential",
        "WorkingDirectory",
    ):
        assert template[key] == single[key], key
    environment = lines(TEMPLATE, "Environment")
    assert "PORT=300%i" in environment and "PROCESSOR_MNEMONIC_FILE=%d/mnemonic" in environment
    ports = {"300%i".replace("%i", str(instance)) for instance in (1, 2, 3)}
    assert ports == {"3001", "3002", "3003"}
    assert lines(TEMPLATE, "EnvironmentFile") == [
        "/etc/depeg-backend-processor/env",
        "-/etc/depeg-backend-processor/env.%i",
    ]
    assert "%i" in unit(TEMPLATE)["Unit"]["Description"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("instance", ["1", "2", "3"])
def test_template_instances_pass_systemd_analyze_verify(tmp_path, instance) -> None:
    runnable_copy(TEMPLATE, tmp_path)  # the instance is loaded from the template beside it
    name = tmp_path / TEMPLATE.name.replace("@.", f"@{instance}.")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(name)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_verify_of_an_instance_reads_the_template(tmp_path) -> None:
    """The check above would pass on nothing: a broken template makes an instance fail."""
    broken = runnable_copy(TEMPLATE, tmp_path)
    broken.write_text(broken.read_text().replace("ExecStart=", "ExecStart=/nonexistent/bin "))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "depeg-backend-processor@1.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "/nonexistent/bin" in result.stderr


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="no docker compose on this machine")
def test_compose_file_passes_docker_compose_config() -> None:
    result = subprocess.run(
        [*compose_command(), "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_compose_processor_dumps_no_core_and_reads_its_secret_from_a_file() -> None:
    processor = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["processor"]
    assert processor["ulimits"] == {"core": 0}
    assert "PROCESSOR_MNEMONIC" not in processor["environment"]
    assert processor["environment"]["PROCESSOR_MNEMONIC_FILE"].startswith("/run/secrets/")


def test_compose_processor_scales_out() -> None:
    """`docker compose up --scale processor=3`: copies need no name or host port of their
    own, and share one wallet pool."""
    processor = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["processor"]
    assert "container_name" not in processor
    for port in processor.get("ports", []):
        assert ":" not in str(port), f"a fixed host port collides between replicas: {port}"
    assert int(processor["environment"]["PROCESSOR_WALLETS"]) >= 3
    assert processor["depends_on"]["deploy"] == {"condition": "service_completed_successfully"}


def test_dockerfile_runs_as_non_root_with_a_liveness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime") :]
    assert "USER processor" in runtime and "EXPOSE 3000" in runtime
    assert "HEALTHCHECK" in runtime and "/api/monitor/liveness" in runtime
    assert text.rstrip().endswith('CMD ["run"]'), "the runtime stage is the default target"


def test_app_json_gates_a_dokku_deploy_on_readiness() -> None:
    checks = json.loads((ROOT / "app.json").read_text())["healthchecks"]["web"]
    (check,) = checks
    assert check["type"] == "startup" and check["path"] == "/api/monitor/readiness"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {check['port']}" in dockerfile and f"PORT={check['port']}" in dockerfile
    assert check["attempts"] * check["wait"] >= 30, "time for the start-up checks to pass"
    assert "COPY app.json" in dockerfile[dockerfile.index("AS runtime") :], (
        "also in the image's working directory, where Dokku looks for it in image deploys"
    )


def test_dockerfile_caches_the_locked_dependencies_apart_from_the_code() -> None:
    """A code or README change rebuilds only the layers after the source is copied, and the
    dependency layer installs the lock's runtime part, every file checked against its hash."""
    text = (ROOT / "Dockerfile").read_text()
    build = text[text.index("AS build") : text.index("AS devnet")]
    dependencies = build.index("-r requirements/runtime.txt")
    assert dependencies < build.index("COPY setup.py setup.cfg README.md")
    assert dependencies < build.index("COPY depeg_processor")
    install = build[build.rindex("RUN", 0, dependencies) : dependencies]
    assert "--require-hashes" in install and "--no-deps" in install
    devnet = text[text.index("AS devnet") : text.index("AS runtime")]
    assert "--require-hashes --no-deps" in devnet and "-r requirements/devnet.txt" in devnet
    assert "ARG BASE=python:3.11-slim" in text and "FROM ${BASE} AS runtime" in text
