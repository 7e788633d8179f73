"""chain: revert decoding, the one place errors are classified, and the JSON-RPC client over a
faked HTTP endpoint."""
from __future__ import annotations

import json

import pytest
import requests
import responses
from eth_abi import encode as abi_encode

from depeg_processor import errors
from depeg_processor.chain import Chain, NodeUnavailable, classify, revert_reason

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
    assert revert_reason(None, "execution reverted: ERROR:DP-012:BUNDLE_ID_ZERO") == \
        "ERROR:DP-012:BUNDLE_ID_ZERO"
    assert revert_reason("0x1234", "out of gas") == "out of gas"


def test_product_not_active_is_transient() -> None:
    error = classify({"code": 3, "message": "execution reverted",
                      "data": error_data("ERROR:DP-010:PRODUCT_NOT_ACTIVE")})
    assert isinstance(error, errors.ProductInactive)
    assert isinstance(error, errors.TransientError)


@pytest.mark.parametrize("reason", ["ERROR:DMH-001:SIGNATURE_USED",
                                    "ERROR:DMH-002:SIGNATURE_INVALID",
                                    "ERROR:DP-012:BUNDLE_ID_ZERO",
                                    "ECDSA: invalid signature"])
def test_other_reverts_are_permanent_with_the_reason(reason: str) -> None:
    error = classify(reverted(reason))
    assert type(error) is errors.PermanentError
    assert reason in error.reason


def test_revert_recognised_by_message_without_code_3() -> None:
    error = classify({"code": -32000, "message": "execution reverted: ERROR:DMH-001:SIGNATURE_USED"})
    assert type(error) is errors.PermanentError and "DMH-001" in error.reason


def test_revert_without_reason_is_permanent() -> None:
    error = classify({"code": 3, "message": "execution reverted"})
    assert type(error) is errors.PermanentError and error.reason


@pytest.mark.parametrize("message, kind", [
    ("nonce too low: next nonce 5, tx nonce 4", errors.NonceConflict),
    ("replacement transaction underpriced", errors.ReplacementUnderpriced),
    ("already known", errors.AlreadyKnown),
    ("insufficient funds for gas * price + value", errors.InsufficientFunds),
    ("header not found", errors.TransientError),
])
def test_node_refusals_are_classified(message: str, kind: type) -> None:
    error = classify({"code": -32000, "message": message})
    assert type(error) is kind
    assert not isinstance(error, errors.PermanentError)


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
    node.add_callback(responses.POST, URL, callback=rpc_reply(
        lambda m, p: ("error", reverted("ERROR:DP-010:PRODUCT_NOT_ACTIVE"))))
    with pytest.raises(errors.ProductInactive):
        chain.request("eth_estimateGas", [{"to": "0x" + "00" * 20, "data": "0x"}])


def test_batch_returns_values_and_errors_in_call_order(node, chain) -> None:
    def handler(method, params):
        if method == "eth_getTransactionReceipt" and params[0] == "0x02":
            return "error", {"code": -32000, "message": "header not found"}
        return "result", {"eth_blockNumber": "0x10",
                          "eth_getBalance": "0xde0b6b3a7640000",
                          "eth_getTransactionReceipt": {"blockNumber": "0x5"}}[method]
    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = chain.batch([("eth_blockNumber", []), ("eth_getBalance", ["0x" + "11" * 20, "latest"]),
                           ("eth_getTransactionReceipt", ["0x02"]),
                           ("eth_getTransactionReceipt", ["0x03"])])
    assert results[:2] == ["0x10", "0xde0b6b3a7640000"]
    assert isinstance(results[2], errors.TransientError)
    assert results[3] == {"blockNumber": "0x5"}
    assert len(node.calls) == 1  # one HTTP request


def test_batch_of_one_returns_an_error_instance(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(
        lambda m, p: ("error", {"code": -32000, "message": "already known"})))
    [result] = chain.batch([("eth_sendRawTransaction", ["0x00"])])
    assert isinstance(result, errors.AlreadyKnown)


def test_batch_connection_error_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NodeUnavailable):
        chain.batch([("eth_blockNumber", []), ("eth_chainId", [])])
