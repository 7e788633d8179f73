"""chain.classify: revert decoding and the one place node errors are sorted into kinds."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.chain.classify import classify, revert_reason
from depeg_processor.errors import NodeUnavailable

from .fake_node import error_data, reverted


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
