"""The deployment files operators copy: the systemd unit, the compose file, the Dockerfile,
Dokku's app.json."""
from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "depeg-backend-processor.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_unit_is_notify_with_watchdog_and_restart_policy() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 60  # above PROCESSOR_QUEUE_LISTENER_LOOP_MAX_TIMEOUT
    assert service["Restart"] == "on-failure"
    assert "-m depeg_processor run" in service["ExecStart"]
    assert "PROCESSOR_MNEMONIC_FILE" in service["Environment"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path) -> None:
    # verify also checks that ExecStart exists: point it at this machine's python
    text = UNIT.read_text().replace("/opt/depeg-backend-processor/.venv/bin/python",
                                    shutil.which("python3") or "/usr/bin/python3")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="no docker compose on this machine")
def test_compose_file_passes_docker_compose_config() -> None:
    result = subprocess.run([*compose_command(), "config", "-q"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_as_non_root_with_a_liveness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime"):]
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
    assert "COPY app.json" in dockerfile[dockerfile.index("AS runtime"):], \
        "also in the image's working directory, where Dokku looks for it in image deploys"
