"""monitor.make_monitor_app: the WSGI health endpoints, called directly (no sockets)."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry, Counter

from depeg_processor.chain.health import ProviderView
from depeg_processor.monitor import Limits, make_monitor_app
from depeg_processor.state import SharedState

LIMITS = Limits(
    alert_balance=10**18, loop_max_age=60.0, watcher_max_age=60.0, max_non_ack_pending=10
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock) -> SharedState:
    """A healthy service's state."""
    state = SharedState(monotonic=clock)
    state.processor_beat()
    state.watcher_beat()
    state.set_balance(2 * 10**18)
    state.set_non_ack_pending(0)
    return state


def call(app, path: str, method: str = "GET") -> tuple[str, dict, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def get(state, path: str = "/api/monitor", **kwargs) -> tuple[int, dict]:
    status, headers, body = call(make_monitor_app(state, LIMITS), path, **kwargs)
    assert headers["Content-Type"] == "application/json"
    return int(status.split()[0]), json.loads(body)


def test_healthy_service_answers_200_all_ok(state) -> None:
    assert get(state) == (200, {"balance": "ok", "processor": "ok", "nonAckPendingTx": "ok"})


def test_trailing_slash_is_the_same_path(state) -> None:
    assert get(state, "/api/monitor/")[0] == 200


@pytest.mark.parametrize(
    "break_it, key, words",
    [
        (lambda s, c: s.set_balance(10**18 - 1), "balance", "below the alert balance"),
        (lambda s, c: s.set_non_ack_pending(11), "nonAckPendingTx", "11 stream entries"),
    ],
)
def test_failing_check_answers_500_naming_it(state, clock, break_it, key, words) -> None:
    break_it(state, clock)
    status, body = get(state)
    assert status == 500
    assert words in body[key]
    assert [k for k, v in body.items() if v != "ok"] == [key]


def test_balance_at_the_alert_level_is_ok(state) -> None:
    state.set_balance(10**18)
    state.set_non_ack_pending(10)
    assert get(state)[0] == 200


def test_unknown_balance_fails(clock) -> None:
    state = SharedState(monotonic=clock)
    state.processor_beat()
    state.set_non_ack_pending(0)
    status, body = get(state)
    assert status == 500 and "unknown" in body["balance"]


def test_stale_processor_heartbeat_fails(state, clock) -> None:
    clock.now += 60.0
    state.watcher_beat()
    assert get(state)[0] == 200
    clock.now += 1.0
    status, body = get(state)
    assert status == 500 and "processor loop last ran 61s ago" in body["processor"]


def test_stale_watcher_heartbeat_fails(state, clock) -> None:
    clock.now += 61.0
    state.processor_beat()
    status, body = get(state)
    assert status == 500 and "receipt watcher" in body["processor"]


def test_liveness_checks_only_processor_and_non_ack(state) -> None:
    state.set_balance(0)
    state.node_failed("refused")
    assert get(state, "/api/monitor/liveness") == (
        200,
        {"processor": "ok", "nonAckPendingTx": "ok"},
    )
    state.set_non_ack_pending(11)
    assert get(state, "/api/monitor/liveness")[0] == 500


def test_readiness_checks_balance_node_and_redis(state) -> None:
    assert get(state, "/api/monitor/readiness") == (
        200,
        {"balance": "ok", "node": "ok", "redis": "ok"},
    )


@pytest.mark.parametrize(
    "fail, key",
    [
        (lambda s: s.node_failed("connection refused by node.internal:8545"), "node"),
        (lambda s: s.redis_failed("ConnectionError: refused by redis.internal:6379"), "redis"),
    ],
)
def test_readiness_fails_on_node_or_redis_error(state, fail, key) -> None:
    """It names the dependency; the host and the raw error are for the log only."""
    fail(state)
    status, body = get(state, "/api/monitor/readiness")
    assert status == 500 and body[key] == f"{key} unavailable (see the log)"
    assert "internal" not in json.dumps(body) and "refused" not in json.dumps(body)
    assert get(state, "/api/monitor/liveness")[0] == 200


def test_readiness_recovers_when_the_error_clears(state) -> None:
    state.node_failed("down")
    state.node_ok()
    assert get(state, "/api/monitor/readiness")[0] == 200


def test_a_standby_is_ready_and_says_so(state) -> None:
    state.set_holding("standby: another processor (p@host:1:ab) holds the wallet's lease")
    status, body = get(state, "/api/monitor/readiness")
    assert status == 200 and "sending" not in body
    assert body["role"].startswith("standby") and "p@host:1:ab" in body["role"]
    state.node_failed("refused")
    assert get(state, "/api/monitor/readiness")[0] == 500, "a standby needs its dependencies"


def test_other_holds_fail_readiness(state) -> None:
    state.set_holding("balance 5 wei is below PROCESSOR_MIN_BALANCE")
    status, body = get(state, "/api/monitor/readiness")
    assert status == 500 and "role" not in body
    assert body["sending"].startswith("on hold: balance")


def test_unknown_path_is_404_without_echoing_it(state) -> None:
    assert get(state, "/api/other<script>") == (404, {"error": "no such path"})


@pytest.mark.parametrize("path", ["/api/monitor", "/api/monitor/readiness"])
def test_post_is_405(state, path) -> None:
    status, headers, _ = call(make_monitor_app(state, LIMITS), path, method="POST")
    assert status.startswith("405") and "GET" in headers["Allow"]


def test_metrics_only_with_a_registry(state) -> None:
    assert call(make_monitor_app(state, LIMITS), "/metrics")[0].startswith("404")
    registry = CollectorRegistry()
    Counter("depeg_unit_test_total", "a counter", registry=registry).inc()
    status, _, body = call(make_monitor_app(state, LIMITS, registry), "/metrics")
    assert status.startswith("200")
    assert b"depeg_unit_test_total 1.0" in body


def test_metrics_carry_each_endpoints_verdict_as_of_the_scrape(state, clock) -> None:
    """depeg_processor_healthy{endpoint}: what each endpoint would answer, judged at the
    scrape: a stalled loop shows as 0 for liveness without a probe of its own."""
    registry = CollectorRegistry()
    app = make_monitor_app(state, LIMITS, registry)

    def verdicts() -> dict[str, float]:
        return {
            endpoint: registry.get_sample_value("depeg_processor_healthy", {"endpoint": endpoint})
            for endpoint in ("monitor", "liveness", "readiness")
        }

    assert verdicts() == {"monitor": 1.0, "liveness": 1.0, "readiness": 1.0}
    assert b'depeg_processor_healthy{endpoint="liveness"} 1.0' in call(app, "/metrics")[2]
    clock.now += 61.0  # the loop's heartbeat is stale, the watcher beats on
    state.watcher_beat()
    assert verdicts() == {"monitor": 0.0, "liveness": 0.0, "readiness": 1.0}
    assert get(state, "/api/monitor/liveness")[0] == 500
    state.processor_beat()
    state.node_failed("connection refused", "processor")
    assert verdicts() == {"monitor": 0.0, "liveness": 1.0, "readiness": 0.0}


def test_one_threads_success_does_not_hide_anothers_failure() -> None:
    from depeg_processor.state import SharedState

    state = SharedState()
    state.redis_failed("ConnectionError: refused", "processor")
    state.redis_ok("watcher")
    assert state.snapshot().redis_error == "ConnectionError: refused"
    state.redis_ok("processor")
    assert state.snapshot().redis_error is None
    state.node_failed("node unreachable", "watcher")
    state.node_ok("processor")
    assert state.snapshot().node_error == "node unreachable"


def provider(index: int, usable: bool, why: str | None = None) -> ProviderView:
    return ProviderView(
        index=index,
        name=f"#{index} https://p{index}.test",
        usable=usable,
        head=100,
        lag=0,
        latency=0.01,
        errors=0 if usable else 3,
        why=why,
    )


def test_readiness_names_a_provider_not_usable_while_another_serves(state) -> None:
    state.set_providers([provider(0, False, "node unreachable"), provider(1, True)])
    status, body = get(state, "/api/monitor/readiness")
    assert status == 200 and body["node"] == "ok"
    assert body["providers"] == "not usable: #0 (not answering)"


def test_readiness_fails_when_no_provider_answers(state) -> None:
    state.set_providers([provider(0, False, "unreachable"), provider(1, False, "timeout")])
    state.node_failed(
        "no provider answered (batch): #0 https://p0.test: unreachable; "
        "#1 https://p1.test: timeout",
        "watcher",
    )
    status, body = get(state, "/api/monitor/readiness")
    assert status == 500
    assert body["node"] == "node unavailable (see the log)"
    assert body["providers"] == "not usable: #0 (not answering); #1 (not answering)"
    assert "p0.test" not in json.dumps(body) and "timeout" not in json.dumps(body)
