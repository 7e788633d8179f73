"""The alert rules and the Grafana dashboard against the metrics the service registers: the
names they use exist, and every alert has a promtool test that fires it and one that does not.
(`make check-deploy` runs promtool and a real Prometheus; these catch a renamed metric sooner.)"""

from __future__ import annotations

import json

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from depeg_processor.metrics import Metrics
from depeg_processor.monitor import Limits, export_verdicts
from depeg_processor.state import SharedState
from devnet import prometheus as prom


def served() -> set[str]:
    """What /metrics serves: the service's metrics and the monitor's verdicts."""
    metrics = Metrics(CollectorRegistry())
    metrics.wallet("0x0000000000000000000000000000000000000001").balance.set(1)
    limits = Limits(alert_balance=1, loop_max_age=60, watcher_max_age=60, max_non_ack_pending=10)
    export_verdicts(SharedState(), limits, metrics.registry)
    return prom.exported_metrics(generate_latest(metrics.registry).decode())


def test_every_metric_the_rules_and_the_dashboard_use_is_registered() -> None:
    queries = [query for _, query in prom.dashboard_queries()]
    used = prom.used_metrics(prom.rule_expressions() + queries)
    assert len(used) >= 10
    assert used <= served(), used - served()


def test_every_alert_has_a_test_that_fires_it_and_one_that_stays_quiet() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(prom.RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    fired, quiet = set(), set()
    for test in yaml.safe_load(prom.RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts == fired == quiet


def test_dashboard_is_provisioning_ready() -> None:
    """No data source uid baked in: every panel and target asks the `datasource` variable."""
    dashboard = json.loads(prom.DASHBOARD.read_text())
    assert dashboard["uid"] and "id" not in dashboard  # Grafana gives the id
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for holder in (panel, *panel["targets"]):
            assert holder["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_exported_metrics_reads_type_lines_and_samples() -> None:
    text = (
        "# TYPE a_total counter\n# TYPE e counter\n# TYPE b histogram\n# TYPE c gauge\n"
        'c{wallet="x"} 1.0\nd_created 2.0\n'
    )
    names = prom.exported_metrics(text)
    assert {"a_total", "e_total", "b_bucket", "b_sum", "b_count", "c", "d_created"} <= names
