"""metrics: dead-letter kinds and wallets stay small label sets; /metrics serves the registry."""

from __future__ import annotations

import dataclasses
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from depeg_processor import errors
from depeg_processor.chain.classify import classify
from depeg_processor.chain.health import ProviderView
from depeg_processor.metrics import Metrics
from depeg_processor.monitor import Limits, make_monitor_app
from depeg_processor.state import SharedState


def scrape(registry: CollectorRegistry) -> dict[tuple, float]:
    app = make_monitor_app(SharedState(), Limits(1, 60, 60, 10), registry)
    environ: dict = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    body = b"".join(app(environ, lambda s, headers: None))
    return {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


@pytest.mark.parametrize(
    "revert, kind",
    [
        ("ERROR:DMH-001:SIGNATURE_USED", "DMH-001"),
        ("ERROR:SMH-001:SIGNATURE_USED", "SMH-001"),
        ("ERROR:DP-013:BUNDLE_NOT_ACTIVE", "DP-013"),
        ("ERROR:DP-099:ANYTHING", "DP-099"),
        ("ERROR:BUC-060:BUNDLE_DOES_NOT_EXIST", "BUC-060"),
        ("ERROR:POL-022:RISKPOOL_SUM_INSURED_CAP_EXCEEDED", "POL-022"),
        ("ERROR:TRS-024:FEE_SPEC_UNDEFINED", "TRS-024"),
        ("ERROR:RPS-010:BUNDLE_CLOSED_OR_BURNED", "RPS-010"),
        ("ERROR:COS-003:COMPONENT_ID_INVALID", "COS-003"),
        ("ERROR:UPDP-010:CHAIN_NOT_SUPPORTET", "UPDP-010"),
        ("ERROR:BUC-999:NOT_SHIPPED", "revert_other"),
        ("ERROR:AYI-001:AN_EXAMPLE_PRODUCT", "revert_other"),
        ("ERROR:AB-7:MADE_UP", "revert_other"),
        ("ERROR:DP-1234:TOO_LONG", "revert_other"),
        ("ECDSA: invalid signature", "revert_other"),
        ("something ERROR:DP-012:BUNDLE_ID_ZERO", "revert_other"),
    ],
)
def test_a_revert_is_counted_by_its_code_only_when_the_product_has_it(revert, kind) -> None:
    error = classify({"code": 3, "message": f"execution reverted: {revert}"})
    assert isinstance(error, errors.PermanentError) and error.kind == kind


def test_every_revert_code_is_a_short_fixed_label() -> None:
    """The revert codes counted by name are built in code, a bounded set of short labels."""
    assert len(errors.REVERT_CODES) < 1000
    assert all(len(code) <= 8 for code in errors.REVERT_CODES)
    assert "duplicate" in errors.KINDS and not errors.KINDS & errors.REVERT_CODES


def test_a_framework_revert_is_counted_as_its_own_kind() -> None:
    metrics = Metrics(CollectorRegistry())
    error = classify(
        {"code": 3, "message": "execution reverted: ERROR:BUC-060:BUNDLE_DOES_NOT_EXIST"}
    )
    metrics.dead_letter(error.kind)
    key = ("depeg_processor_applications_dead_lettered_total", (("reason", "BUC-060"),))
    assert scrape(metrics.registry)[key] == 1


def test_dead_letter_labels_stay_a_fixed_set_whatever_users_send() -> None:
    metrics = Metrics(CollectorRegistry())
    for n in range(300):
        metrics.dead_letter(f"ERROR:AB-{n}")
        metrics.dead_letter(f"invalid_field {n}")
    for kind in ("invalid_field", "DMH-001", "not_utf8"):
        metrics.dead_letter(kind)
    labels = {
        dict(labels)["reason"]: value
        for (name, labels), value in scrape(metrics.registry).items()
        if name == "depeg_processor_applications_dead_lettered_total"
    }
    assert labels == {"other": 600, "invalid_field": 1, "DMH-001": 1, "not_utf8": 1}


def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.dead_letter("DP-012")
    metrics.submitted.inc(3)
    samples = scrape(metrics.registry)
    assert samples[("depeg_processor_applications_submitted_total", ())] == 3
    assert (
        samples[("depeg_processor_applications_dead_lettered_total", (("reason", "DP-012"),))] == 1
    )


def test_wallet_gauges_are_labelled_by_address_one_series_per_wallet() -> None:
    metrics = Metrics(CollectorRegistry())
    first, second = "0x" + "a1" * 20, "0x" + "b2" * 20
    for _round in range(3):  # set again and again: still one series per wallet
        metrics.wallet(first).balance.set(5)
        metrics.wallet(first).in_flight.set(2)
        metrics.wallet(second).balance.set(7)
        metrics.wallet(second).chain_nonce.set(4)
    metrics.wallet(second).local_nonce.set_function(lambda: 9)
    samples = scrape(metrics.registry)
    balances = {
        dict(labels)["wallet"]: value
        for (name, labels), value in samples.items()
        if name == "depeg_processor_wallet_balance_wei"
    }
    assert balances == {first: 5, second: 7}
    assert samples[("depeg_processor_transactions_in_flight", (("wallet", first),))] == 2
    assert samples[("depeg_processor_nonce", (("source", "chain"), ("wallet", second)))] == 4
    assert samples[("depeg_processor_nonce", (("source", "local"), ("wallet", second)))] == 9


def test_a_wallet_given_up_leaves_no_stale_series() -> None:
    metrics = Metrics(CollectorRegistry())
    kept, gone = "0x" + "a1" * 20, "0x" + "b2" * 20
    for address in (kept, gone):
        gauges = metrics.wallet(address)
        gauges.balance.set(1)
        gauges.chain_nonce.set(1)
        gauges.local_nonce.set(1)
        gauges.in_flight.set(1)
        gauges.oldest_in_flight.set(1)
    metrics.forget_wallet(gone)
    metrics.forget_wallet("0x" + "c3" * 20)  # never watched: nothing to drop, no error
    wallets = {
        dict(labels).get("wallet")
        for (name, labels), _v in scrape(metrics.registry).items()
        if dict(labels).get("wallet")
    }
    assert wallets == {kept}


def test_provider_series_are_labelled_by_index_only() -> None:
    metrics = Metrics(CollectorRegistry())
    view = ProviderView(
        index=1,
        name="#1 https://b.test",
        usable=False,
        head=90,
        lag=5,
        latency=0.2,
        errors=2,
        why="node unreachable",
    )
    metrics.providers([view])
    metrics.providers([dataclasses.replace(view, errors=3)])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in family.samples
    }
    label = (("provider", "1"),)
    assert samples[("depeg_processor_provider_usable", label)] == 0
    assert samples[("depeg_processor_provider_lag_blocks", label)] == 5
    assert samples[("depeg_processor_provider_head", label)] == 90
    assert samples[("depeg_processor_provider_errors_total", label)] == 3, "counted once each"
    assert not any("b.test" in str(key) for key in samples)
