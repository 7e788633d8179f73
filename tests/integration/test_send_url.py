"""CHAIN_SEND_URL through the entry point: the processor's raw transaction goes to the send
endpoint alone and every read to CHAIN_RPC_URL; `status` and `check-config` name the endpoint
by scheme and host, and neither they nor the processor's log ever show its path or query (a
relay's URL may carry a key)."""

from __future__ import annotations

import json

import pytest

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import application, cli, receipt, service_env

pytestmark = pytest.mark.integration
SECRET = "SECRETKEY123"


def test_raw_transactions_go_to_the_send_url_alone_and_it_is_never_shown(
    anvil, product, webapp, redis_server, redis_client, spawn, tmp_path
):
    with RpcProxy(anvil.url) as public, RpcProxy(anvil.url) as sends:
        send_url = f"http://user:{SECRET}@127.0.0.1:{sends.port}/v1/{SECRET}?auth={SECRET}"
        env = service_env(redis_server.url, public.url, product.address, CHAIN_SEND_URL=send_url)
        log = tmp_path / "processor.log"
        spawn(env, log)
        entity_id = webapp.apply()
        tx_hash = wait_until(
            lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
        )
        wait_until(lambda: receipt(anvil, tx_hash), what="mined")
        assert sends.calls["eth_sendRawTransaction"] == 1
        assert set(sends.calls) == {"eth_sendRawTransaction"}, "reads never go there"
        assert public.calls["eth_sendRawTransaction"] == 0
        assert public.calls["eth_getBlockByNumber"] > 0

        status = cli(env, "status", "--json")
        checked = cli(env, "check-config")
    named = f"relay http://127.0.0.1:{sends.port}"
    assert json.loads(status.stdout)["raw_transactions_to"] == named
    assert checked.returncode == 0 and f"{named} ok (chain id" in checked.stdout, checked.stdout
    shown = status.stdout + status.stderr + checked.stdout + checked.stderr + log.read_text()
    assert f"raw transactions go to the private {named} only" in shown
    assert SECRET not in shown
