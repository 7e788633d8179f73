"""chain.providers: several providers used as one node, over faked HTTP endpoints: reads from
the best one and the next within the same call, reads a decision rests on only from one at the
best head, raw transactions to all with their answers merged, and no URL shown."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from depeg_processor import errors
from depeg_processor.chain.broadcast import merge
from depeg_processor.chain.clients import build_chain_client
from depeg_processor.chain.health import PROBE_INTERVAL
from depeg_processor.chain.providers import Providers
from depeg_processor.chain.urls import provider_name, redact, split_urls

from .fake_node import Clock, error_answer

A, B = "https://a.test/v3/KEY-A", "https://user:pw@b.test:8443/rpc?apikey=KEY-B"
TX = "0x" + "ab" * 32


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def providers(clock) -> Providers:
    chain = build_chain_client([A, B], timeout=5, wait=clock.wait, monotonic=clock)
    assert isinstance(chain, Providers)
    return chain


class Provider:
    """A faked provider: its head, its answers by method, what it was asked."""

    def __init__(self, node, url: str, *, head: int = 100, clock: Clock | None = None) -> None:
        self.head, self.asked, self.down, self.slow = head, [], False, 0.0
        self.answers: dict[str, object] = {}
        self._clock = clock
        node.add_callback(responses.POST, url, callback=self._reply)

    def _reply(self, request):
        if self.down:
            raise requests.ConnectionError("connection refused")
        if self._clock is not None:
            self._clock.now += self.slow
        body = json.loads(request.body)
        members = body if isinstance(body, list) else [body]
        self.asked += [m["method"] for m in members]
        replies = [self._answer(m) for m in members]
        return 200, {}, json.dumps(replies if isinstance(body, list) else replies[0])

    def _answer(self, member: dict) -> dict:
        method = member["method"]
        if method == "eth_blockNumber":
            value = hex(self.head)
        elif method == "eth_getBlockByNumber":
            value = {"number": hex(self.head), "hash": "0x" + "11" * 32}
        elif method == "eth_chainId":
            value = self.answers.get(method, "0x7a69")
        else:
            value = self.answers.get(method)
        if isinstance(value, dict) and "code" in value:
            return {**error_answer(value["code"], value["message"], member["id"])}
        return {"jsonrpc": "2.0", "id": member["id"], "result": value}


def test_only_scheme_and_host_of_a_url_are_shown() -> None:
    assert split_urls(f" {A} ,{B},") == (A, B)
    assert redact(A) == "https://a.test"
    assert redact(B) == "https://b.test:8443"
    assert provider_name(1, B) == "#1 https://b.test:8443"
    assert "KEY" not in redact("https://k.test/KEY?KEY=1#KEY") and redact("nonsense") != "nonsense"


def test_a_read_goes_to_the_preferred_and_to_the_next_within_the_same_call(
    node, providers, clock
) -> None:
    a, b = Provider(node, A), Provider(node, B)
    a.answers["eth_getBalance"], b.answers["eth_getBalance"] = "0x1", "0x2"
    assert providers.balance("0x" + "00" * 20) == 1
    a.down = True
    assert providers.balance("0x" + "00" * 20) == 2, "answered by the fallback, same call"
    assert providers.balance("0x" + "00" * 20) == 2
    assert a.asked.count("eth_getBalance") == 1, "no work for a failed one before a probe"
    [first, second] = providers.views()
    assert not first.usable and "unreachable" in first.why and second.usable

    a.down = False
    clock.now += PROBE_INTERVAL
    providers.probe_idle()
    assert providers.views()[0].usable
    assert providers.balance("0x" + "00" * 20) == 1, "the preferred one takes the work back"


def test_when_none_answers_each_is_named_by_index_and_host_only(node, providers) -> None:
    a, b = Provider(node, A), Provider(node, B)
    a.down = b.down = True
    with pytest.raises(errors.NodeUnavailable) as raised:
        providers.chain_id()
    message = str(raised.value)
    assert "#0 https://a.test" in message and "#1 https://b.test:8443" in message
    assert "KEY" not in message and "pw" not in message


def test_a_rate_limit_moves_the_call_on_at_once(node, providers, clock) -> None:
    a, b = Provider(node, A), Provider(node, B)
    a.answers["eth_getBalance"] = {"code": -32005, "message": "limit exceeded"}
    b.answers["eth_getBalance"] = "0x2"
    assert providers.balance("0x" + "00" * 20) == 2
    assert clock.waits == [], "nothing waited: the fallback answered"
    assert providers.balance("0x" + "00" * 20) == 2
    assert a.asked.count("eth_getBalance") == 1, "not asked again within its back-off"


def test_a_slow_provider_is_left_for_a_fast_one(node, providers, clock) -> None:
    a, b = Provider(node, A, clock=clock), Provider(node, B, clock=clock)
    a.answers["eth_getBalance"], b.answers["eth_getBalance"] = "0x1", "0x2"
    a.slow = 3.0
    assert providers.balance("0x" + "00" * 20) == 1  # answered, in 3 s
    assert providers.balance("0x" + "00" * 20) == 2
    assert providers.views()[0].slow


def test_a_decision_is_never_read_from_a_provider_behind_the_best_head(node, providers) -> None:
    a, b = Provider(node, A, head=100), Provider(node, B, head=95)
    a.answers["eth_getTransactionReceipt"] = {"blockNumber": hex(99), "transactionHash": TX}
    providers.latest_block()  # the best head: 100, from the preferred one
    a.down = True
    with pytest.raises(errors.NodeUnavailable, match="#1 https://b.test:8443: behind block 100"):
        providers.batch([("eth_getTransactionReceipt", [TX])])
    assert b.asked[-2:] == ["eth_blockNumber", "eth_getTransactionReceipt"], "asked, then dropped"
    b.head = 100  # caught up: its answers count
    assert providers.batch([("eth_getTransactionReceipt", [TX])]) == [None]
    assert providers.views()[1].head == 100


def test_a_simulation_is_not_answered_by_a_provider_behind_the_best_head(node, providers) -> None:
    """A lagging provider's eth_call, eth_estimateGas or eth_simulateV1 would judge an
    application on an old state (a refusal sets it aside): like the reads a decision rests
    on, its answer counts only at the best head."""
    a, b = Provider(node, A, head=100), Provider(node, B, head=99)
    b.answers["eth_call"] = {"code": 3, "message": "execution reverted"}
    a.answers["eth_call"] = "0x01"
    providers.latest_block()  # the best head: 100
    assert providers.views()[1].head is None or providers.views()[1].head < 100
    a.down = True
    for method in ("eth_call", "eth_estimateGas", "eth_simulateV1"):
        with pytest.raises(errors.NodeUnavailable, match="behind block 100"):
            providers.batch([(method, [{}, "latest"])])
    assert b.asked[-2:] == ["eth_blockNumber", "eth_simulateV1"], "asked, then dropped"


def test_a_provider_down_at_start_gets_no_work_before_its_chain_id_is_seen(
    node, providers, clock
) -> None:
    """Down when the chain ids were compared, it could serve another chain: until a probe
    has seen its chain id it is asked nothing else, even with every checked one failing."""
    a, b = Provider(node, A), Provider(node, B)
    b.down = True
    assert providers.agree_on_chain_id() == 0x7A69
    b.down = False
    a.answers["eth_getBalance"], b.answers["eth_getBalance"] = "0x1", "0x2"
    b.answers["eth_chainId"] = "0x1"  # it serves another chain
    a.down = True
    with pytest.raises(errors.NodeUnavailable):
        providers.balance("0x" + "00" * 20)
    assert "eth_getBalance" not in b.asked, "not asked before its chain id was seen"
    clock.now += PROBE_INTERVAL * 10
    providers.probe_idle()
    assert "eth_chainId" in b.asked and not providers.views()[1].on_chain
    with pytest.raises(errors.NodeUnavailable):
        providers.balance("0x" + "00" * 20)
    assert "eth_getBalance" not in b.asked, "on another chain: never used"


def test_a_lagging_provider_is_left_while_another_keeps_up(node, providers, clock) -> None:
    a, b = Provider(node, A, head=95), Provider(node, B, head=100)
    a.answers["eth_getTransactionCount"], b.answers["eth_getTransactionCount"] = "0x1", "0x5"
    providers.agree_on_chain_id()  # at start: every provider's head
    assert providers.views()[0].lag == 5
    assert providers.nonce("0x" + "00" * 20) == 5
    assert "eth_getTransactionCount" not in a.asked


def test_raw_transactions_go_to_every_provider_and_the_answers_merge(node, providers) -> None:
    a, b = Provider(node, A), Provider(node, B)
    a.answers["eth_sendRawTransaction"] = {"code": -32000, "message": "already known"}
    b.answers["eth_sendRawTransaction"] = TX
    assert providers.batch([("eth_sendRawTransaction", ["0x02"])]) == [TX]
    assert a.asked.count("eth_sendRawTransaction") == b.asked.count("eth_sendRawTransaction") == 1
    b.down = True
    [known] = providers.batch([("eth_sendRawTransaction", ["0x02"])])
    assert isinstance(known, errors.AlreadyKnown)


def test_merged_answers_refuse_only_when_no_provider_accepted() -> None:
    """Accepted by any is accepted, and a refusal counts only when none accepted; but "nonce
    too low" from any comes first (only a node that saw the nonce used says so: a stale one
    accepting it must not hide that), and a fee under the base fee comes before "known"."""
    low, known = errors.NonceConflict("nonce too low"), errors.AlreadyKnown("already known")
    cheap, funds = errors.FeeTooLow("max fee below base fee"), errors.InsufficientFunds("funds")
    down = errors.NodeUnavailable("unreachable")
    assert merge([[funds], [TX]], 1) == [TX]
    assert merge([[known], [funds]], 1) == [known]
    assert merge([down, [funds]], 1) == [funds]
    assert merge([down, down], 1) == [down]
    assert merge([[TX, funds], [known, TX]], 2) == [TX, TX]
    assert merge([[TX], [low]], 1) == [low] and merge([[known], [low]], 1) == [low]
    assert merge([[known], [cheap]], 1) == [cheap] and merge([[cheap], [TX]], 1) == [TX]


def test_providers_on_different_chains_are_refused_naming_them(node, providers) -> None:
    _a, b = Provider(node, A), Provider(node, B)
    b.answers["eth_chainId"] = "0x1"
    with pytest.raises(errors.ConfigError) as raised:
        providers.agree_on_chain_id()
    assert raised.value.name == "CHAIN_RPC_URL"
    assert "#0 https://a.test chain id 31337" in str(raised.value)
    assert "#1 https://b.test:8443 chain id 1" in str(raised.value)
    assert "KEY" not in str(raised.value)


def test_one_url_is_the_plain_client() -> None:
    assert not isinstance(build_chain_client([A], timeout=5), Providers)


def test_one_url_waits_out_a_rate_limit_on_the_injected_clock(node, clock) -> None:
    client = build_chain_client([A], timeout=5, wait=clock.wait, monotonic=clock)
    node.add(responses.POST, A, status=429, headers={"Retry-After": "2"})
    node.add(responses.POST, A, json={"jsonrpc": "2.0", "id": 0, "result": "0x7a69"})
    assert client.chain_id() == 0x7A69 and clock.waits == [2.0]
    node.add(responses.POST, A, json={"jsonrpc": "2.0", "id": 0, "result": "0x7a69"})
    assert client.chain_id() == 0x7A69
    assert clock.waits == [2.0], "the pause ended on the injected clock: not waited again"


def test_one_node_has_no_chain_ids_to_compare_and_nothing_to_probe(node, clock) -> None:
    """The set's questions, asked of one node: answered without a call."""
    client = build_chain_client([A], timeout=5, wait=clock.wait, monotonic=clock)
    assert client.agree_on_chain_id() is None
    clock.now += PROBE_INTERVAL * 10
    client.probe_idle()
    client.close()
    assert len(node.calls) == 0


def test_the_chain_ids_are_compared_once_a_provider_answered(node, providers) -> None:
    a, b = Provider(node, A), Provider(node, B)
    a.down = b.down = True
    assert providers.agree_on_chain_id() is None, "none answered"
    a.down = b.down = False
    assert providers.agree_on_chain_id() == 0x7A69, "asked again, as none had answered"
    assert a.asked == b.asked == ["eth_chainId", "eth_blockNumber"]
    b.answers["eth_chainId"] = "0x1"
    assert providers.agree_on_chain_id() == 0x7A69
    assert len(a.asked) == len(b.asked) == 2, "settled: the providers are not asked again"


def test_idle_probes_stay_within_ten_calls_a_minute_each(node, providers, clock) -> None:
    a, b = Provider(node, A), Provider(node, B)
    b.down = True
    for _second in range(60):
        providers.probe_idle()
        clock.now += 1.0
    assert len(a.asked) <= 10 + 1, a.asked  # the chain id once, with the first probe
    assert a.asked.count("eth_blockNumber") == 10
    assert b.asked == [] and providers.views()[1].errors <= 10, "a dead one: no more often"
    assert not providers.views()[1].usable
    b.down = False
    clock.now += 30.0
    providers.probe_idle()
    assert providers.views()[1].usable, "back once a probe has an answer"
