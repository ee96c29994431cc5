"""Every error reaching a client has a code; our own bugs are masked, client mistakes are not."""

from __future__ import annotations

import pytest
from graphql import GraphQLError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from server.api.errors import ApiError, ErrorCode, is_expected, to_client_error
from server.brokers.streaming import Family, FeedProblem
from server.security.passwords import PasswordHashTimeoutError
from server.security.ratelimit import RateLimited
from server.streams.hub import SymbolLimitError
from server.streams.orders import SlowConsumerError
from server.streams.runner import FeedFailure


def _located(original: Exception, message: str = "boom") -> GraphQLError:
    return GraphQLError(message, path=["me", "role"], original_error=original)


def test_a_value_the_schema_cannot_represent_is_our_bug_and_masked() -> None:
    completion = GraphQLError("Enum 'Role' cannot represent value: <Role instance>", path=["me", "role"])
    coded = to_client_error(completion)
    assert coded.message == "Unexpected error."
    assert coded.extensions is not None
    assert coded.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert not is_expected(completion)
    assert to_client_error(coded).extensions == coded.extensions  # coding twice changes nothing


def test_a_variable_of_the_wrong_type_is_bad_user_input() -> None:
    coercion = GraphQLError("Variable '$symbol' got invalid value 1; String cannot represent a non string value")
    assert to_client_error(coercion).extensions == {"code": "BAD_USER_INPUT"}
    assert is_expected(coercion)


def test_expected_failures_keep_their_code_and_details() -> None:
    refused = to_client_error(_located(ApiError(ErrorCode.FORBIDDEN, "Only an admin may do this.")))
    assert (refused.message, refused.extensions) == ("Only an admin may do this.", {"code": "FORBIDDEN"})
    throttled = to_client_error(_located(RateLimited(12)))
    assert throttled.extensions == {"code": "RATE_LIMITED", "retryAfter": 12}


def test_unexpected_exceptions_are_masked() -> None:
    leaked = to_client_error(_located(KeyError("secret-internal-detail")))
    assert leaked.message == "Unexpected error."
    assert "secret-internal-detail" not in str(leaked.formatted)


def test_a_hashing_backlog_is_a_retryable_refusal() -> None:
    busy = to_client_error(_located(PasswordHashTimeoutError()))
    assert busy.extensions == {"code": "RATE_LIMITED", "retryAfter": 1}


def test_a_saturated_database_pool_is_a_retryable_refusal() -> None:
    busy = to_client_error(_located(PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached")))
    assert busy.extensions == {"code": "RATE_LIMITED", "retryAfter": 1}
    assert "QueuePool" not in str(busy.formatted)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (FeedFailure(FeedProblem.AUTH_FAILED, "keys refused"), "BROKER_AUTH_FAILED"),
        (FeedFailure(FeedProblem.CONNECTION_LIMIT, "one stream"), "BROKER_UNAVAILABLE"),
        (FeedFailure(FeedProblem.INSUFFICIENT_SUBSCRIPTION, "plan"), "FORBIDDEN"),
        (FeedFailure(FeedProblem.UNAVAILABLE, "unreachable"), "BROKER_UNAVAILABLE"),
        (SymbolLimitError(Family.STOCKS, 30, 31), "SYMBOL_LIMIT"),
        (SlowConsumerError(), "SLOW_CONSUMER"),
    ],
)
def test_stream_failures_have_codes(failure: Exception, code: str) -> None:
    coded = to_client_error(_located(failure))
    assert coded.extensions is not None
    assert coded.extensions["code"] == code
