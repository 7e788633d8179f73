"""The monitor: a WSGI app that judges the shared state's snapshot. No I/O on a request.

`/api/monitor` (balance, processor, nonAckPendingTx), `/api/monitor/liveness` (processor,
nonAckPendingTx) and `/api/monitor/readiness` (balance, node, redis) answer 200 when every
check says "ok" and 500 otherwise, with a JSON body naming each check (readiness adds an
informational `role` for a hot standby, `inFlight` for a wallet waiting at its cap on
transactions in flight, and `providers` naming those of several that are not usable while
another serves; `node` fails only when none answers; `reverts` fails while the pool's revert
budget holds sending). `/metrics` serves the
Prometheus registry when one is given.

The port is public (deployments publish it), so an answer names a failing dependency (redis, the
node, provider `#1`) and never its host or the raw error: those are in the log, where the thread
that met the failure wrote them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app

from .state import SharedState, Snapshot

OK = "ok"
INFORMATIONAL = frozenset({"role", "inFlight", "providers"})  # reported, never a failure


@dataclasses.dataclass(frozen=True)
class Limits:
    """The thresholds the checks compare against (from the settings)."""

    alert_balance: int
    loop_max_age: float
    watcher_max_age: float
    max_non_ack_pending: int


def check_balance(snap: Snapshot, limits: Limits) -> str:
    if snap.balance is None:
        return "balance unknown: the node has not been asked yet"
    if snap.balance < limits.alert_balance:
        return f"balance {snap.balance} wei is below the alert balance {limits.alert_balance} wei"
    return OK


def check_processor(
    snap: Snapshot, limits: Limits, now: float, *, dependencies: bool = True
) -> str:
    """The loops run; with `dependencies`, also that they are not stalled on Redis or the node
    (liveness leaves that out: a restart would not bring a dependency back)."""
    if snap.processor_beat is None:
        return "the processor loop has not run yet"
    age = now - snap.processor_beat
    if age > limits.loop_max_age:
        return f"the processor loop last ran {age:.0f}s ago (limit {limits.loop_max_age:.0f}s)"
    if snap.watcher_beat is not None and now - snap.watcher_beat > limits.watcher_max_age:
        return f"the receipt watcher last ran {now - snap.watcher_beat:.0f}s ago"
    if dependencies and snap.redis_error:
        return "waiting for redis (see the log)"
    if dependencies and snap.node_error:
        return "waiting for the node (see the log)"
    return OK


def check_non_ack(snap: Snapshot, limits: Limits) -> str:
    if snap.non_ack_pending is None:
        return "unknown: the stream has not been read yet"
    if snap.non_ack_pending > limits.max_non_ack_pending:
        return (
            f"{snap.non_ack_pending} stream entries delivered but not acknowledged "
            f"(limit {limits.max_non_ack_pending})"
        )
    return OK


def check_node(snap: Snapshot) -> str:
    if snap.node_error:
        return "node unavailable (see the log)"
    if snap.rate_limited:
        return "rate limited by the node (see the log)"
    return OK


def check_providers(snap: Snapshot) -> str | None:
    """Of several providers, those not usable now (by their index in the list), or None."""
    down = [view for view in snap.providers if not view.usable]
    if not down:
        return None
    return "not usable: " + "; ".join(
        f"#{v.index} ({'not answering' if v.on_chain else 'on another chain'})" for v in down
    )


def check_redis(snap: Snapshot) -> str:
    return "redis unavailable (see the log)" if snap.redis_error else OK


def monitor_checks(snap: Snapshot, limits: Limits, now: float) -> dict[str, str]:
    return {
        "balance": check_balance(snap, limits),
        "processor": check_processor(snap, limits, now),
        "nonAckPendingTx": check_non_ack(snap, limits),
    }


def liveness_checks(snap: Snapshot, limits: Limits, now: float) -> dict[str, str]:
    return {
        "processor": check_processor(snap, limits, now, dependencies=False),
        "nonAckPendingTx": check_non_ack(snap, limits),
    }


def readiness_checks(snap: Snapshot, limits: Limits, now: float) -> dict[str, str]:
    """A hot standby is ready: it can take over the moment the sender's lease ends, which is
    what a deploy waits for before stopping the old process. Its `role` says so."""
    checks = {
        "balance": check_balance(snap, limits),
        "node": check_node(snap),
        "redis": check_redis(snap),
    }
    providers = check_providers(snap)
    if providers is not None:
        checks["providers"] = providers
    if snap.standby:
        checks["role"] = snap.holding
    elif snap.at_cap:  # back-pressure: the wallet sends again as its transactions are mined
        checks["inFlight"] = snap.holding
    elif snap.holding:
        checks["sending"] = f"on hold: {snap.holding}"
    if snap.stuck:
        checks["transactions"] = snap.stuck
    if snap.reverts:
        checks["reverts"] = snap.reverts
    return checks


ROUTES: dict[str, Callable[[Snapshot, Limits, float], dict[str, str]]] = {
    "/api/monitor": monitor_checks,
    "/api/monitor/liveness": liveness_checks,
    "/api/monitor/readiness": readiness_checks,
}


def healthy(checks: dict[str, str]) -> bool:
    return all(value == OK for key, value in checks.items() if key not in INFORMATIONAL)


def export_verdicts(state: SharedState, limits: Limits, registry: CollectorRegistry) -> None:
    """`depeg_processor_healthy{endpoint}`: 1 where the endpoint would answer 200 now, judged
    at each scrape from the same state (an alert on liveness needs no probe of its own)."""
    gauge = Gauge(
        "depeg_processor_healthy",
        "1 while the monitor endpoint would answer 200",
        ["endpoint"],
        registry=registry,
    )
    for path, checks_for in ROUTES.items():
        gauge.labels(endpoint=path.rsplit("/", 1)[-1]).set_function(
            lambda checks_for=checks_for: float(
                healthy(checks_for(state.snapshot(), limits, state.now()))
            )
        )


def make_monitor_app(
    state: SharedState, limits: Limits, registry: CollectorRegistry | None = None
) -> Callable:
    """The WSGI app over `state`; `registry` adds `/metrics`, with the endpoints' verdicts."""
    metrics_app = None
    if registry is not None:
        export_verdicts(state, limits, registry)
        metrics_app = make_wsgi_app(registry)

    def respond(
        start_response: Callable, status: str, body: dict, extra: Iterable[tuple[str, str]] = ()
    ) -> list[bytes]:
        payload = json.dumps(body).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
                *extra,
            ],
        )
        return [payload]

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics" and metrics_app is not None:
            if method not in ("GET", "HEAD"):
                return respond(
                    start_response,
                    "405 Method Not Allowed",
                    {"error": "method not allowed"},
                    [("Allow", "GET, HEAD")],
                )
            return metrics_app(environ, start_response)
        checks_for = ROUTES.get(path)
        if checks_for is None:
            return respond(start_response, "404 Not Found", {"error": "no such path"})
        if method not in ("GET", "HEAD"):
            return respond(
                start_response,
                "405 Method Not Allowed",
                {"error": "method not allowed"},
                [("Allow", "GET, HEAD")],
            )
        checks = checks_for(state.snapshot(), limits, state.now())
        status = "200 OK" if healthy(checks) else "500 Internal Server Error"
        return respond(start_response, status, checks)

    return app
