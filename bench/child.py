"""The processor under benchmark, in a fresh interpreter: counts its own Redis round trips
(one per `send_packed_command`: a pipeline is one) and reports its peak RSS."""

from __future__ import annotations

import threading
from multiprocessing.connection import Connection

import redis

ROUND_TRIPS = [0]


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
    from depeg_processor.chain.rpc import NodeClient
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
            chain=NodeClient(url=settings.chain_rpc_url, timeout=30),
            stop=threading.Event(),
        )
    )
    assert service.prepare()
    ROUND_TRIPS[0] = 0
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
    pipe.send({"redis_round_trips": ROUND_TRIPS[0], "peak_rss_kib": peak_rss_kib()})
