"""chain: revert decoding, the one place errors are classified, and the JSON-RPC client over a
faked HTTP endpoint."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from eth_abi import encode as abi_encode

from depeg_processor import errors
from depeg_processor.chain import rpc as chain_module
from depeg_processor.chain import simulation
from depeg_processor.chain.classify import classify, revert_reason
from depeg_processor.chain.rpc import Chain
from depeg_processor.chain.simulation import Simulator
from depeg_processor.errors import NodeUnavailable

URL = "http://node.test"


def error_data(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


def reverted(reason: str) -> dict:
    return {"code": 3, "message": f"execution reverted: {reason}", "data": error_data(reason)}


def test_revert_reason_decodes_error_string_data() -> None:
    data = error_data("ERROR:DMH-001:SIGNATURE_USED")
    assert revert_reason(data, "execution reverted") == "ERROR:DMH-001:SIGNATURE_USED"
    assert revert_reason({"data": data}, "execution reverted") == "ERROR:DMH-001:SIGNATURE_USED"


def test_revert_reason_falls_back_to_the_message() -> None:
    assert (
        revert_reason(None, "execution reverted: ERROR:DP-012:BUNDLE_ID_ZERO")
        == "ERROR:DP-012:BUNDLE_ID_ZERO"
    )
    assert revert_reason("0x1234", "out of gas") == "out of gas"


def test_product_not_active_is_transient() -> None:
    error = classify(
        {
            "code": 3,
            "message": "execution reverted",
            "data": error_data("ERROR:DP-010:PRODUCT_NOT_ACTIVE"),
        }
    )
    assert isinstance(error, errors.ProductInactive)
    assert isinstance(error, errors.TransientError)


@pytest.mark.parametrize(
    "reason",
    [
        "ERROR:DMH-001:SIGNATURE_USED",
        "ERROR:DMH-002:SIGNATURE_INVALID",
        "ERROR:DP-012:BUNDLE_ID_ZERO",
        "ECDSA: invalid signature",
    ],
)
def test_other_reverts_are_permanent_with_the_reason(reason: str) -> None:
    error = classify(reverted(reason))
    assert type(error) is errors.PermanentError
    assert reason in error.reason


def test_revert_recognised_by_message_without_code_3() -> None:
    error = classify(
        {"code": -32000, "message": "execution reverted: ERROR:DMH-001:SIGNATURE_USED"}
    )
    assert type(error) is errors.PermanentError and "DMH-001" in error.reason


def test_revert_without_reason_is_permanent() -> None:
    error = classify({"code": 3, "message": "execution reverted"})
    assert type(error) is errors.PermanentError and error.reason


@pytest.mark.parametrize(
    "message, kind",
    [
        ("nonce too low: next nonce 5, tx nonce 4", errors.NonceConflict),
        ("replacement transaction underpriced", errors.ReplacementUnderpriced),
        ("already known", errors.AlreadyKnown),
        ("insufficient funds for gas * price + value", errors.InsufficientFunds),
        ("header not found", errors.TransientError),
    ],
)
def test_node_refusals_are_classified(message: str, kind: type) -> None:
    error = classify({"code": -32000, "message": message})
    assert type(error) is kind
    assert not isinstance(error, errors.PermanentError)


def error_answer(code: int, message: str, request_id: int | None = 0) -> dict:
    """A JSON-RPC answer carrying an error object (id None: for no request in particular)."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def rpc_reply(handler):
    """A responses callback answering single and batch JSON-RPC requests via
    handler(method, params) -> ("result", value) | ("error", error-object)."""

    def answer(call: dict) -> dict:
        kind, value = handler(call["method"], call["params"])
        return {"jsonrpc": "2.0", "id": call["id"], kind: value}

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, list):
            return 200, {}, json.dumps([answer(call) for call in reversed(body)])  # any order
        return 200, {}, json.dumps(answer(body))

    return callback


@pytest.fixture
def node():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def chain() -> Chain:
    return Chain.from_url(URL, timeout=5)


def test_request_returns_the_result(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x7a69")))
    assert chain.chain_id() == 31337
    assert json.loads(node.calls[0].request.body)["method"] == "eth_chainId"


def test_connection_error_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NodeUnavailable):
        chain.request("eth_blockNumber", [])


def test_http_error_status_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, status=502, body="bad gateway")
    with pytest.raises(NodeUnavailable):
        chain.request("eth_blockNumber", [])


def test_json_rpc_error_is_raised_classified(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(lambda m, p: ("error", reverted("ERROR:DP-010:PRODUCT_NOT_ACTIVE"))),
    )
    with pytest.raises(errors.ProductInactive):
        chain.request("eth_estimateGas", [{"to": "0x" + "00" * 20, "data": "0x"}])


def test_batch_returns_values_and_errors_in_call_order(node, chain) -> None:
    def handler(method, params):
        if method == "eth_getTransactionReceipt" and params[0] == "0x02":
            return "error", {"code": -32000, "message": "header not found"}
        return "result", {
            "eth_blockNumber": "0x10",
            "eth_getBalance": "0xde0b6b3a7640000",
            "eth_getTransactionReceipt": {"blockNumber": "0x5"},
        }[method]

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = chain.batch(
        [
            ("eth_blockNumber", []),
            ("eth_getBalance", ["0x" + "11" * 20, "latest"]),
            ("eth_getTransactionReceipt", ["0x02"]),
            ("eth_getTransactionReceipt", ["0x03"]),
        ]
    )
    assert results[:2] == ["0x10", "0xde0b6b3a7640000"]
    assert isinstance(results[2], errors.TransientError)
    assert results[3] == {"blockNumber": "0x5"}
    assert len(node.calls) == 1  # one HTTP request


def test_batch_of_one_returns_an_error_instance(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(lambda m, p: ("error", {"code": -32000, "message": "already known"})),
    )
    [result] = chain.batch([("eth_sendRawTransaction", ["0x00"])])
    assert isinstance(result, errors.AlreadyKnown)


def test_batch_connection_error_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NodeUnavailable):
        chain.batch([("eth_blockNumber", []), ("eth_chainId", [])])


# -- simulating a batch of calls -----------------------------------------------------------------
@pytest.fixture
def simulator(chain) -> Simulator:
    return Simulator(chain=chain)


CALLS = [{"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "data": "0x", "gas": hex(100_000)}] * 4


def simulated(status: str, return_data: str = "0x", error: dict | None = None) -> dict:
    outcome = {"status": status, "returnData": return_data, "gasUsed": "0x5208", "logs": []}
    if error is not None:
        outcome["error"] = error
    return outcome


def test_simulate_runs_the_calls_in_one_eth_simulate_v1_request(node, simulator) -> None:
    outcomes = [
        simulated("0x1", "0x" + "ab" * 32),
        # anvil: a generic error, the revert data in returnData
        simulated(
            "0x0",
            error_data("ERROR:DMH-001:SIGNATURE_USED"),
            {"code": -3200, "message": "execution failed"},
        ),
        # geth: no return data, code 3 with the revert data in the error
        simulated("0x0", "0x", reverted("ERROR:DP-010:PRODUCT_NOT_ACTIVE")),
        simulated("0x0", "0x", reverted("ERROR:DP-013:BUNDLE_NOT_ACTIVE")),
        simulated("0x0", "0x", {"code": -32015, "message": "out of gas"}),
    ]
    node.add_callback(
        responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", [{"calls": outcomes}]))
    )
    results = simulator.simulate(CALLS + CALLS[:1], "pending")

    assert results[0] == "0x" + "ab" * 32
    assert isinstance(results[1], errors.PermanentError)
    assert results[1].reason == "reverted: ERROR:DMH-001:SIGNATURE_USED"
    assert isinstance(results[2], errors.ProductInactive)
    assert isinstance(results[3], errors.PermanentError)
    assert results[3].reason == "reverted: ERROR:DP-013:BUNDLE_NOT_ACTIVE"
    assert type(results[4]) is errors.TransientError, "out of gas: neither permanent nor final"
    assert "out of gas" in str(results[4])
    [request] = [json.loads(call.request.body) for call in node.calls]
    assert request["method"] == "eth_simulateV1"
    options, block = request["params"]
    assert block == "pending" and options["validation"] is False
    [state] = options["blockStateCalls"]
    assert state["calls"] == CALLS + CALLS[:1]
    assert state["blockOverrides"] == {"gasLimit": hex(500_000)}, "room for every call"


def methods(node) -> list:
    """The method of each request: a name, or a list of names for a batch."""
    bodies = [json.loads(call.request.body) for call in node.calls]
    return [b["method"] if isinstance(b, dict) else [c["method"] for c in b] for b in bodies]


def eth_call_or(refusal):
    """A node answering eth_call, and eth_simulateV1 with `refusal` (a responses callback
    result) each time."""

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, dict) and body["method"] == "eth_simulateV1":
            return refusal
        return rpc_reply(lambda m, p: ("result", "0x01"))(request)

    return callback


@pytest.mark.parametrize(
    "refusal",
    [
        (200, {}, json.dumps(error_answer(-32601, "the method eth_simulateV1 does not exist"))),
        (400, {}, json.dumps(error_answer(-32004, "method not supported"))),
        (403, {}, json.dumps(error_answer(-32601, "method not allowed"))),
        (501, {}, ""),
        (200, {}, json.dumps({"jsonrpc": "2.0", "id": 0, "result": {"unexpected": "shape"}})),
    ],
    ids=["not found", "400 not supported", "403", "501", "another shape"],
)
def test_a_node_without_eth_simulate_v1_gets_eth_calls_after_three_batches(
    node, simulator, refusal
) -> None:
    node.add_callback(responses.POST, URL, callback=eth_call_or(refusal))
    strikes = simulation.SIMULATE_V1_STRIKES
    for batch in range(1, strikes + 1):
        assert simulator.simulate(CALLS, "pending") == ["0x01"] * 4, "each batch still simulated"
        assert simulator.simulates is (batch < strikes)
    assert simulator.simulate(CALLS[:2], "pending") == ["0x01"] * 2
    assert methods(node) == [
        *(["eth_simulateV1", ["eth_call"] * 4] * simulation.SIMULATE_V1_STRIKES),
        ["eth_call"] * 2,
    ], "asked three batches in a row, then never again"


def test_a_passing_failure_of_eth_simulate_v1_costs_one_batch_not_the_method(
    node, simulator
) -> None:
    timeout = (200, {}, json.dumps(error_answer(-32603, "execution aborted (timeout = 5s)")))
    ok = [{"calls": [simulated("0x1", "0x02")] * 4}]
    answers = iter([timeout, timeout, None, timeout, timeout, None])

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, dict) and body["method"] == "eth_simulateV1":
            refusal = next(answers)
            if refusal is None:
                return rpc_reply(lambda m, p: ("result", ok))(request)
            return refusal
        return rpc_reply(lambda m, p: ("result", "0x01"))(request)

    node.add_callback(responses.POST, URL, callback=callback)
    results = [simulator.simulate(CALLS, "pending")[0] for _batch in range(6)]
    assert results == ["0x01", "0x01", "0x02", "0x01", "0x01", "0x02"]
    assert simulator.simulates, "never three failures in a row"


def test_an_outage_raises_node_unavailable_and_counts_against_no_method(node, simulator) -> None:
    for _batch in range(simulation.SIMULATE_V1_STRIKES + 1):
        node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
        node.add(responses.POST, URL, status=401, json={"error": {"code": -32002}})
        with pytest.raises(NodeUnavailable):
            simulator.simulate(CALLS, "pending")
    assert simulator.simulates, "the node was down (or refused the key), not the method"


# -- a hosted provider's limits ------------------------------------------------------------------
class Clock:
    """The chain's monotonic clock and wait: waiting moves the clock on, nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(clock):
    """A chain with a fake clock; .facts lists what it told the shared state, .errors what
    it counted."""
    facts, counted = [], []
    chain = Chain(
        url=URL,
        timeout=5,
        max_batch=10,
        wait=clock.wait,
        monotonic=clock,
        on_rate_limit=facts.append,
        on_error=counted.append,
    )
    chain.facts, chain.counted = facts, counted
    return chain


def echo(method, params):
    return "result", f"{method}:{params[0] if params else ''}"


def sizes(node) -> list[int]:
    """How many calls each HTTP request carried (1 for a plain object)."""
    bodies = [json.loads(call.request.body) for call in node.calls]
    return [len(body) if isinstance(body, list) else 1 for body in bodies]


def test_rate_limit_codes_and_messages_are_classified() -> None:
    for error in (
        {"code": -32005, "message": "limit exceeded"},
        {"code": -32000, "message": "Too Many Requests"},
        {"code": 429, "message": "daily request count exceeded, request rate limited"},
        {"code": -32600, "message": "rate exceeded"},
    ):
        classified = classify(error)
        assert isinstance(classified, errors.RateLimited), error
        assert isinstance(classified, NodeUnavailable)  # never an application's own failure
    assert not isinstance(
        classify({"code": -32000, "message": "exceeds block gas limit"}), errors.RateLimited
    )
    assert not isinstance(
        classify({"code": -32000, "message": "gas limit exceeded"}), errors.RateLimited
    )


def test_429_with_retry_after_is_waited_out_and_retried(node, limited, clock) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "2"}, body="slow down")
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x7a69")))
    assert limited.chain_id() == 31337
    assert clock.waits == [2.0]
    assert len(node.calls) == 2
    assert [fact is None for fact in limited.facts] == [False, True]  # limited, then over
    assert "HTTP 429" in limited.facts[0]
    assert [type(e) for e in limited.counted] == [errors.RateLimited]


def test_429_without_retry_after_backs_off_exponentially_with_a_cap(
    node, limited, clock, monkeypatch
) -> None:
    monkeypatch.setattr(chain_module, "PATIENCE", 30.0)
    for _ in range(6):
        node.add(responses.POST, URL, status=429)
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x1")))
    assert limited.request("eth_blockNumber", []) == "0x1"
    assert clock.waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_lasting_rate_limit_raises_rate_limited_within_the_patience(node, limited, clock) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "2"})
    with pytest.raises(errors.RateLimited) as caught:
        limited.request("eth_blockNumber", [])
    assert isinstance(caught.value, NodeUnavailable)
    assert sum(clock.waits) <= chain_module.PATIENCE and clock.waits == [2.0, 2.0]
    assert limited.facts[-1] is not None, "still limited: the monitor keeps saying so"


def test_a_retry_after_beyond_the_patience_gives_up_at_once_and_is_honoured_later(
    node, limited, clock
) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "30"})
    with pytest.raises(errors.RateLimited):
        limited.request("eth_blockNumber", [])
    with pytest.raises(errors.RateLimited):
        limited.request("eth_blockNumber", [])  # not asked again before the 30 s are over
    assert len(node.calls) == 1 and clock.waits == []
    clock.now += 30
    node.replace(responses.POST, URL, json={"jsonrpc": "2.0", "id": 0, "result": "0x2"})
    assert limited.request("eth_blockNumber", []) == "0x2"


def test_stopping_ends_the_wait(node, clock) -> None:
    chain = Chain(url=URL, timeout=5, wait=lambda seconds: True, monotonic=clock)
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited, match="stopping"):
        chain.request("eth_blockNumber", [])
    assert len(node.calls) == 1


def test_json_rpc_32005_for_a_whole_batch_is_retried(node, limited, clock) -> None:
    node.add(
        responses.POST,
        URL,
        json=error_answer(-32005, "limit exceeded", None),
    )
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    assert limited.batch([("eth_getBalance", ["a"]), ("eth_getBalance", ["b"])]) == [
        "eth_getBalance:a",
        "eth_getBalance:b",
    ]
    assert clock.waits == [0.25] and sizes(node) == [2, 2]


def test_rate_limited_batch_members_alone_are_asked_again(node, limited, clock) -> None:
    refused = {"b", "d"}

    def handler(method, params):
        if params[0] in refused:
            refused.discard(params[0])
            return "error", {"code": -32005, "message": "limit exceeded"}
        return echo(method, params)

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = limited.batch([("eth_call", [x]) for x in "abcd"])
    assert results == [f"eth_call:{x}" for x in "abcd"]
    assert sizes(node) == [4, 2] and clock.waits == [0.25]


def test_members_still_limited_after_the_patience_carry_rate_limited(node, limited) -> None:
    def handler(method, params):
        if params[0] == "b":
            return "error", {"code": -32005, "message": "limit exceeded"}
        return echo(method, params)

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    first, second = limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])])
    assert first == "eth_call:a" and isinstance(second, errors.RateLimited)


def test_batches_are_cut_at_the_configured_size(node, limited) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    results = limited.batch([("eth_getTransactionReceipt", [str(i)]) for i in range(25)])
    assert results == [f"eth_getTransactionReceipt:{i}" for i in range(25)]
    assert sizes(node) == [10, 10, 5]


def refusing_batches_over(limit: int, refusal):
    """A provider that answers batches over `limit` with `refusal(request)`."""
    ok = rpc_reply(echo)

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, list) and len(body) > limit:
            return refusal(body)
        return ok(request)

    return callback


@pytest.mark.parametrize(
    "refusal",
    [
        lambda body: (413, {}, "request entity too large"),
        lambda body: (
            400,
            {},
            json.dumps(error_answer(-32600, "batch too large", None)),
        ),
        lambda body: (
            200,
            {},
            json.dumps(error_answer(-32600, "batch too large", None)),
        ),
        lambda body: (
            200,
            {},
            json.dumps([{"jsonrpc": "2.0", "id": m["id"], "result": "0x0"} for m in body[:3]]),
        ),  # an array of the wrong length
    ],
    ids=["413", "400", "error object", "short array"],
)
def test_a_refused_batch_is_halved_and_the_size_remembered(node, limited, refusal) -> None:
    node.add_callback(responses.POST, URL, callback=refusing_batches_over(3, refusal))
    calls = [("eth_call", [str(i)]) for i in range(10)]
    assert limited.batch(calls) == [f"eth_call:{i}" for i in range(10)]
    assert sizes(node) == [10, 5, 3, 3, 3, 1]
    assert limited.max_batch == 3

    node.calls.reset()
    assert limited.batch(calls[:4]) == [f"eth_call:{i}" for i in range(4)]
    assert sizes(node) == [3, 1], "the smaller size is kept for later batches"


def test_a_provider_without_batches_gets_single_calls_in_order(node, limited) -> None:
    def handler(method, params):
        if params[0] == "2":
            return "error", {"code": -32000, "message": "nonce too low"}
        return echo(method, params)

    node.add_callback(
        responses.POST,
        URL,
        callback=refusing_batches_over(
            1, lambda body: (400, {}, "batch requests are not supported")
        ),
    )
    calls = [("eth_sendRawTransaction", [str(i)]) for i in range(5)]
    results = limited.batch(calls)
    assert results[:2] == ["eth_sendRawTransaction:0", "eth_sendRawTransaction:1"]
    assert results[3:] == ["eth_sendRawTransaction:3", "eth_sendRawTransaction:4"]
    assert results[2] == "eth_sendRawTransaction:2"
    assert sizes(node) == [5, 3, 2, 1, 1, 1, 1, 1] and not limited.batches

    node.reset()
    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = limited.batch(calls)
    assert isinstance(results[2], errors.NonceConflict)
    assert [r for i, r in enumerate(results) if i != 2] == [
        f"eth_sendRawTransaction:{i}" for i in (0, 1, 3, 4)
    ]
    assert sizes(node) == [1] * 5, "no batch is tried again"


def test_singles_reuse_the_thread_s_kept_alive_session(node, limited) -> None:
    limited.batches = False
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    limited.batch([("eth_call", ["0"])])
    session = limited._local.session
    limited.batch([("eth_call", [str(i)]) for i in range(3)])
    assert limited._local.session is session and len(node.calls) == 4


def test_a_rate_limit_answered_with_http_400_is_waited_out_not_taken_as_a_refusal(
    node, limited, clock
) -> None:
    node.add(
        responses.POST,
        URL,
        status=400,
        json=error_answer(-32005, "limit exceeded", None),
    )
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    assert limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])]) == ["eth_call:a", "eth_call:b"]
    assert clock.waits == [0.25] and limited.batches and limited.max_batch == 10


@pytest.mark.parametrize("status, body", [(502, "bad gateway"), (200, "<html>oops</html>")])
def test_a_broken_answer_to_a_batch_is_the_node_unavailable_not_a_refusal(
    node, limited, status, body
) -> None:
    node.add(responses.POST, URL, status=status, body=body)
    with pytest.raises(NodeUnavailable):
        limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])])
    assert limited.batches and limited.max_batch == 10
