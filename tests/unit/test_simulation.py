"""chain.simulation: a batch of calls in one eth_simulateV1 request, or as a batch of eth_call
where the node does not offer it (learned after three failures in a row)."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from depeg_processor import errors
from depeg_processor.chain import simulation
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.chain.simulation import Simulator
from depeg_processor.errors import NodeUnavailable

from .fake_node import URL, error_answer, error_data, methods, reverted, rpc_reply


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(chain=NodeClient(url=URL, timeout=5))


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


def test_a_replayed_transaction_that_fails_gives_no_results(node, simulator) -> None:
    """What is in flight did not replay: the state the calls saw is not the one they will
    meet on chain, so none of their results is given (nor an eth_call in their place)."""
    outcomes = [
        simulated("0x1"),
        simulated("0x0", error_data("ERROR:DMH-001:SIGNATURE_USED"), {"code": -3200}),
        simulated("0x1", "0x" + "ab" * 32),
    ]
    node.add_callback(
        responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", [{"calls": outcomes}]))
    )
    with pytest.raises(errors.ReplayFailed, match="1 of 2 replayed .*DMH-001"):
        simulator.simulate(CALLS[:1], "latest", before=CALLS[:2])
    assert methods(node) == ["eth_simulateV1"] and simulator.simulates


def test_a_replayed_transaction_already_mined_is_no_failure(node, simulator) -> None:
    """A replay that fails as `done` says (mined already: its signature used) counts as in
    the block; the calls' results are given."""
    outcomes = [
        simulated("0x0", error_data("ERROR:DMH-001:SIGNATURE_USED"), {"code": -3200}),
        simulated("0x1"),
        simulated("0x1", "0x" + "ab" * 32),
    ]
    node.add_callback(
        responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", [{"calls": outcomes}]))
    )
    results = simulator.simulate(
        CALLS[:1],
        "latest",
        before=CALLS[:2],
        done=lambda error: getattr(error, "kind", None) == "DMH-001",
    )
    assert results == ["0x" + "ab" * 32]
