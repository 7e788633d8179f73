"""metrics: dead-letter kinds stay a small label set; /metrics serves the registry."""
from __future__ import annotations

from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from depeg_processor import errors
from depeg_processor.chain import classify
from depeg_processor.metrics import Metrics
from depeg_processor.monitor import Limits, make_monitor_app
from depeg_processor.state import SharedState


def scrape(registry: CollectorRegistry) -> dict[tuple, float]:
    app = make_monitor_app(SharedState(), Limits(1, 60, 60, 10), registry)
    environ: dict = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    body = b"".join(app(environ, lambda s, headers: None))
    return {(s.name, tuple(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


@pytest.mark.parametrize("revert, kind", [
    ("ERROR:DMH-001:SIGNATURE_USED", "DMH-001"),
    ("ERROR:SMH-001:SIGNATURE_USED", "SMH-001"),
    ("ERROR:DP-013:BUNDLE_NOT_ACTIVE", "DP-013"),
    ("ERROR:DP-099:ANYTHING", "DP-099"),
    ("ERROR:AB-7:MADE_UP", "revert_other"),
    ("ERROR:DP-1234:TOO_LONG", "revert_other"),
    ("ECDSA: invalid signature", "revert_other"),
    ("something ERROR:DP-012:BUNDLE_ID_ZERO", "revert_other"),
])
def test_a_revert_is_counted_by_its_code_only_when_the_product_has_it(revert, kind) -> None:
    error = classify({"code": 3, "message": f"execution reverted: {revert}"})
    assert isinstance(error, errors.PermanentError) and error.kind == kind


def test_dead_letter_labels_stay_a_fixed_set_whatever_users_send() -> None:
    metrics = Metrics(CollectorRegistry())
    for n in range(300):
        metrics.dead_letter(f"ERROR:AB-{n}")
        metrics.dead_letter(f"invalid_field {n}")
    for kind in ("invalid_field", "DMH-001", "not_utf8"):
        metrics.dead_letter(kind)
    labels = {dict(labels)["reason"]: value for (name, labels), value in
              scrape(metrics.registry).items()
              if name == "depeg_processor_applications_dead_lettered_total"}
    assert labels == {"other": 600, "invalid_field": 1, "DMH-001": 1, "not_utf8": 1}


def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.dead_letter("DP-012")
    metrics.submitted.inc(3)
    samples = scrape(metrics.registry)
    assert samples[("depeg_processor_applications_submitted_total", ())] == 3
    assert samples[("depeg_processor_applications_dead_lettered_total",
                    (("reason", "DP-012"),))] == 1
