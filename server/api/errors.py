"""GraphQL errors with `extensions.code`; unexpected failures are masked and logged.

Expected failures raise `ApiError` (or a broker error mapped below) and reach the client
with their code. Anything else is logged once, with its traceback and the request id, and
the client sees only "Unexpected error." with code INTERNAL_SERVER_ERROR and the id.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import GraphQLError
from graphql.error import GraphQLSyntaxError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from server.api.scalars import InvalidDecimalError
from server.brokers.base import (
    BrokerAuthError,
    BrokerRateLimitedError,
    BrokerUnavailableError,
    NotFoundError,
    OrderRejectedError,
    UnknownSymbolError,
)
from server.brokers.registry import UnsupportedBrokerError
from server.brokers.streaming import FeedProblem
from server.log import request_id_var
from server.security.passwords import PasswordHashTimeoutError
from server.security.ratelimit import RateLimited
from server.streams.hub import SymbolLimitError
from server.streams.orders import SlowConsumerError
from server.streams.runner import FeedFailure
from server.trading.ledger import LedgerClosedError
from server.users.problems import InactiveUserError

logger = logging.getLogger(__name__)
BUSY_RETRY_SECONDS = 1


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    BROKER_AUTH_FAILED = "BROKER_AUTH_FAILED"
    SYMBOL_LIMIT = "SYMBOL_LIMIT"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = extensions


def bad_user_input(message: str, **extensions: Any) -> ApiError:
    return ApiError(ErrorCode.BAD_USER_INPUT, message, **extensions)


def rate_limited(retry_after: int) -> ApiError:
    return ApiError(ErrorCode.RATE_LIMITED, f"Too many requests; retry in {retry_after} s.", retryAfter=retry_after)


_FEED_PROBLEM_CODES = {
    FeedProblem.AUTH_FAILED: ErrorCode.BROKER_AUTH_FAILED,
    FeedProblem.CONNECTION_LIMIT: ErrorCode.BROKER_UNAVAILABLE,
    FeedProblem.SYMBOL_LIMIT: ErrorCode.SYMBOL_LIMIT,
    FeedProblem.INSUFFICIENT_SUBSCRIPTION: ErrorCode.FORBIDDEN,
    FeedProblem.UNAVAILABLE: ErrorCode.BROKER_UNAVAILABLE,
}


def api_error_of(error: Exception) -> ApiError | None:
    """The coded error a domain failure is answered with; None for a bug (masked)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnknownSymbolError):
        return bad_user_input(str(error), symbols=list(error.symbols))
    if isinstance(error, InvalidDecimalError):  # raised by the scalar while graphql-core checks an argument
        return bad_user_input(str(error))
    if isinstance(error, RateLimited):
        return rate_limited(error.retry_after)
    if isinstance(error, PasswordHashTimeoutError):  # more sign-ins at once than the hashing threads can take
        return rate_limited(BUSY_RETRY_SECONDS)
    # Every database connection busy for the pool's whole timeout, or the ledger closed as
    # the server shuts down: a retry (the same clientOrderId is safe) gets through later.
    if isinstance(error, PoolTimeoutError | LedgerClosedError):
        return rate_limited(BUSY_RETRY_SECONDS)
    if isinstance(error, SymbolLimitError):
        return ApiError(ErrorCode.SYMBOL_LIMIT, str(error), limit=error.limit, family=error.family.value)
    if isinstance(error, FeedFailure):
        return ApiError(_FEED_PROBLEM_CODES[error.problem], error.message, reason=error.problem.value)
    if isinstance(error, SlowConsumerError):
        return ApiError(ErrorCode.SLOW_CONSUMER, str(error))
    if isinstance(error, UnsupportedBrokerError):
        return ApiError(ErrorCode.BROKER_UNAVAILABLE, str(error))
    if isinstance(error, InactiveUserError):
        return ApiError(ErrorCode.UNAUTHENTICATED, "This account is disabled or no longer exists.")
    if isinstance(error, NotFoundError):
        return ApiError(ErrorCode.NOT_FOUND, f"{error.what[:1].upper()}{error.what[1:]} not found.")
    if isinstance(error, OrderRejectedError):
        return bad_user_input(error.message)
    if isinstance(error, BrokerAuthError):
        return ApiError(ErrorCode.BROKER_AUTH_FAILED, "The broker refused this connection's API keys.")
    if isinstance(error, BrokerRateLimitedError):
        return rate_limited(max(1, math.ceil(error.retry_after or BUSY_RETRY_SECONDS)))
    if isinstance(error, BrokerUnavailableError):
        return ApiError(ErrorCode.BROKER_UNAVAILABLE, "The broker is unavailable; try again shortly.")
    if isinstance(error, InvalidOperationTypeError):
        kind = {OperationType.QUERY: "Queries", OperationType.MUTATION: "Mutations"}.get(error.operation_type)
        return bad_user_input(f"{kind or 'Subscriptions'} are not allowed here")
    if isinstance(error, CannotGetOperationTypeError | MissingQueryError):
        return bad_user_input(str(error) or error.__class__.__name__)
    return None


def _is_completion_failure(error: GraphQLError) -> bool:
    """graphql-core's own error while completing a result (a value an output type cannot
    represent, a null in a non-null field): it has a path and no code, and it is our bug,
    not the client's. (Client mistakes are found before execution and carry no path.)"""
    inner = error.original_error if isinstance(error.original_error, GraphQLError) else error
    return error.path is not None and inner.original_error is None and not (inner.extensions or {}).get("code")


def is_expected(error: GraphQLError) -> bool:
    if _is_completion_failure(error):
        return False
    original = error.original_error
    return original is None or isinstance(original, GraphQLError) or api_error_of(original) is not None


# graphql-core repeats the offending value in its coercion and validation messages
# ("..., found: {'password': '...'}"): a password or a broker secret would come back in
# the answer and land in the log. These cut the value out and keep the explanation.
_VALUE_ECHOES = [
    (re.compile(r"got invalid value .*?; ", re.DOTALL), "got an invalid value; "),
    (re.compile(r", found: .*$", re.DOTALL), "."),
    (re.compile(r" value: .*$", re.DOTALL), " value."),
    (re.compile(r"\bValue .* does not exist in ", re.DOTALL), "That value does not exist in "),
]


def without_values(message: str) -> str:
    for pattern, replacement in _VALUE_ECHOES:
        message = pattern.sub(replacement, message)
    return message


def _code_for_graphql_error(error: GraphQLError) -> ErrorCode:
    # Validation errors were tagged by ErrorCodes.on_validate; what is left without a code
    # is a syntax error or a variable that could not be coerced to its type.
    if isinstance(error, GraphQLSyntaxError):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    return ErrorCode.BAD_USER_INPUT


def _rebuild(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def _masked(error: GraphQLError) -> GraphQLError:
    return _rebuild(
        error,
        "Unexpected error.",
        {"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id_var.get()},
    )


def to_client_error(error: GraphQLError) -> GraphQLError:
    if _is_completion_failure(error):
        return _masked(error)
    original = error.original_error
    if isinstance(original, GraphQLError):
        return to_client_error(original)
    if original is None:
        code = error.extensions.get("code") if error.extensions else None
        return _rebuild(
            error,
            without_values(error.message),
            {**(error.extensions or {}), "code": code or _code_for_graphql_error(error)},
        )
    api_error = api_error_of(original)
    if api_error is not None:
        return _rebuild(error, api_error.message, {"code": api_error.code.value, **api_error.extensions})
    return _masked(error)


class ErrorCodes(MaskErrors):
    """MaskErrors that, instead of blanking every error, gives each one its code."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            error.extensions = {**(error.extensions or {}), "code": ErrorCode.GRAPHQL_VALIDATION_FAILED.value}

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return to_client_error(error)

    def _process_stream_result(self, result: Any) -> None:
        # Runs for every subscription event of every subscriber: most carry no errors, and
        # the base class's runtime-Protocol isinstance check costs more than the event.
        if (
            getattr(result, "errors", None)
            or getattr(result, "incremental", None)
            or getattr(result, "completed", None)
        ):
            super()._process_stream_result(result)


def log_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    operation = execution_context.operation_name if execution_context else None
    for error in errors:
        if is_expected(error):
            logger.debug("graphql error: %s", without_values(error.message), extra={"operation": operation})
        else:
            original = error.original_error
            logger.error(
                "unexpected error in %s",
                ".".join(str(part) for part in error.path or ()) or "operation",
                exc_info=(type(original), original, original.__traceback__) if original else None,
                extra={"operation": operation},
            )
