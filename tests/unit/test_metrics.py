"""metrics: reason kinds stay a small label set; /metrics serves the registry."""
from __future__ import annotations

from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from depeg_processor.metrics import Metrics, reason_kind
from depeg_processor.monitor import Limits, make_monitor_app
from depeg_processor.state import SharedState


@pytest.mark.parametrize("reason, kind", [
    ("reverted: ERROR:DMH-001:SIGNATURE_USED", "DMH-001"),
    ("reverted: ERROR:DP-013:BUNDLE_NOT_ACTIVE", "DP-013"),
    ("transaction 0xab reverted on chain in block 3 (gas used 1); simulated again: "
     "reverted: ERROR:DP-013:BUNDLE_NOT_ACTIVE", "reverted_on_chain"),
    ("signature invalid: signed by 0x1, not by policyHolder 0x2", "signature_invalid"),
    ("field protectedBalance: '1.2e+21' is not a uint256 decimal string", "invalid_field"),
    ("application is missing field(s): signature", "invalid_field"),
    ("application PendingApplication:X not found", "not_found"),
    ("stream entry has no entityId", "bad_entry"),
    ("delivered 11 times without being settled", "too_many_deliveries"),
    ("reverted: ECDSA: invalid signature", "reverted"),
    ("something new", "other"),
])
def test_reason_kinds(reason, kind) -> None:
    assert reason_kind(reason) == kind


def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.dead_letter("reverted: ERROR:DP-012:BUNDLE_ID_ZERO")
    metrics.submitted.inc(3)
    app = make_monitor_app(SharedState(), Limits(1, 60, 60, 10), metrics.registry)
    environ: dict = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers: status.append(s)))
    assert status == ["200 OK"]
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    assert samples[("depeg_processor_applications_submitted_total", ())] == 3
    assert samples[("depeg_processor_applications_dead_lettered_total",
                    (("reason", "DP-012"),))] == 1
