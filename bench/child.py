"""The processor under benchmark, in a fresh interpreter: counts its own Redis round trips
(one per `send_packed_command`: a pipeline is one), reports its peak RSS, and its simulations:
each `eth_simulateV1`'s calls, time and answer size, and each replay's depth (the transactions
in flight replayed before a batch's calls, from the preflight's DEBUG line)."""

from __future__ import annotations

import json
import logging
import threading
import time
from multiprocessing.connection import Connection

import redis

from depeg_processor.chain.rpc import NodeClient

ROUND_TRIPS = [0]
SIMULATIONS: list[tuple[int, float, int]] = []  # (calls, seconds, answer bytes) per request
REPLAYS: list[int] = []  # transactions replayed before a batch, per simulation with a replay


class TimingNodeClient(NodeClient):
    def request(self, method, params):  # noqa: ANN001, ANN201
        if method != "eth_simulateV1":
            return super().request(method, params)
        started = time.perf_counter()
        answer = super().request(method, params)
        calls = len(params[0]["blockStateCalls"][0]["calls"])
        size = len(json.dumps(answer))
        SIMULATIONS.append((calls, time.perf_counter() - started, size))
        return answer


class ReplayDepth(logging.Handler):
    """Reads "simulating N call(s) after M in flight" (preflight, DEBUG)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("simulating %s call(s) after %s in flight"):
            REPLAYS.append(int(record.args[1]))


class CountingConnection(redis.Connection):
    def send_packed_command(self, command, check_health=True):  # noqa: ANN001
        ROUND_TRIPS[0] += 1
        return super().send_packed_command(command, check_health)


def peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(settings_fields: dict, pipe: Connection) -> None:
    from depeg_processor.config import Settings
    from depeg_processor.inbound.untrusted import REDIS_DECODING
    from depeg_processor.service import Service
    from depeg_processor.startup import build_runtime
    from depeg_processor.wallet.pool import derive_accounts

    settings = Settings(**settings_fields)
    [account] = derive_accounts(settings.mnemonic, 1)
    pool = redis.ConnectionPool.from_url(
        settings.redis_url, **REDIS_DECODING, connection_class=CountingConnection
    )
    service = Service(
        build_runtime(
            settings,
            accounts=[account],
            redis_client=redis.Redis(connection_pool=pool),
            chain=TimingNodeClient(url=settings.chain_rpc_url, timeout=30),
            stop=threading.Event(),
        )
    )
    assert service.prepare()
    preflight_log = logging.getLogger("depeg_processor.wallet.preflight")
    preflight_log.addHandler(ReplayDepth(logging.DEBUG))
    preflight_log.setLevel(logging.DEBUG)  # printed only from WARNING: no handler is set up
    ROUND_TRIPS[0] = 0
    SIMULATIONS.clear()
    pipe.send("ready")
    thread = threading.Thread(target=service.run, name="processor", daemon=True)
    thread.start()
    while True:
        message = pipe.recv()
        if message == "rss":
            pipe.send(peak_rss_kib())
        elif message == "rss_now":
            pipe.send(rss_kib())
        elif message == "stop":
            break
    service.shutdown()
    thread.join(10)
    pipe.send(
        {
            "redis_round_trips": ROUND_TRIPS[0],
            "peak_rss_kib": peak_rss_kib(),
            "simulations": list(SIMULATIONS),
            "replays": list(REPLAYS),
        }
    )


def simulation_figures(simulations: list, replays: list) -> dict:
    """The replay's depth per batch and what one eth_simulateV1 costs (see the docstring)."""

    def median(values: list) -> float:
        return sorted(values)[len(values) // 2] if values else 0

    seconds = [s for _calls, s, _size in simulations]
    return {
        "count": len(simulations),
        "replay_depth_median": median(replays),
        "replay_depth_max": max(replays, default=0),
        "calls_median": median([calls for calls, _s, _size in simulations]),
        "ms_median": 1000 * median(seconds),
        "ms_max": 1000 * max(seconds, default=0),
        "ms_per_call": 1000 * sum(seconds) / max(1, sum(c for c, _s, _z in simulations)),
        "answer_kib_median": median([size for _c, _s, size in simulations]) / 1024,
    }
