"""A real Prometheus server on a loopback port, and what `make check-deploy` asks of it and of
promtool: the alert rules check and pass their tests, and every metric the rules and the
Grafana dashboard use is one the processor's /metrics serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devnet.nodes import ROOT, free_port

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "depeg-backend-processor.json"
JOB = "depeg-backend-processor"
METRIC = re.compile(r"\bdepeg_processor_[a-z_]+")
# What Grafana puts for its variables; 5m holds a whole short workload.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "5m"}


def promtool(*args: str) -> str:
    """Run promtool; its output, or RuntimeError with it."""
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise RuntimeError(f"promtool {' '.join(args)} failed:\n{output}")
    return output


def rule_expressions(path: Path = RULES) -> list[str]:
    """Every `expr:` of the rules file (read with PyYAML)."""
    import yaml

    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, query) of every panel target, Grafana's variables filled in."""
    found = []
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def used_metrics(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC.findall(expr)}


def exported_metrics(text: str) -> set[str]:
    """The sample names a /metrics page can carry: each sample's, and for every `# TYPE` line
    the names of its kind (a counter's _total, a histogram's _bucket, _sum, _count), so a
    labelled metric with no series yet counts as served."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            # prometheus-client names a counter's TYPE line with its _total already
            names |= {name, *(name + suffix for suffix in suffixes.get(kind, ()))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


class PrometheusServer:
    """`prometheus` scraping the given targets every second, data in a temporary directory."""

    def __init__(self, targets: list[str], *, port: int | None = None) -> None:
        self.targets = targets
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="check-prometheus-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        config = self._dir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {"job_name": JOB, "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._dir / "prometheus.log").open("w"),
        )
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {self.log()[-2000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return (self._dir / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector."""
        return self.api("query", query=expr)["result"]

    def scrapes_up(self) -> bool:
        targets = self.api("targets")["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
