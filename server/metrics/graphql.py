"""The GraphQL side of the metrics: every operation counted by type, name and outcome,
queries and mutations timed, running subscriptions gauged by their root field.

The outcome is "ok" or the code the client sees for the first error (coded here the same
way ErrorCodes codes it, so the order of the extensions does not matter). A
subscription's lifetime is not a latency: it is counted when it ends, never timed (one
handed over to its connection, server/api/streams/direct.py, ends after its operation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from graphql import FieldNode, GraphQLError, get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from server.api.context import Context
from server.api.errors import ErrorCode, api_error_of, to_client_error
from server.api.streams.direct import handed_over
from server.metrics.registry import Metrics

logger = logging.getLogger(__name__)


class OperationMetrics(SchemaExtension):
    _subscription: str | None = None  # the gauge's label while this operation holds it

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        failure: Exception | None = None
        try:
            yield
        except Exception as error:
            failure = error
            raise
        finally:
            metrics = _metrics_of(self.execution_context)
            if metrics is not None:
                try:
                    self._record(metrics, failure, time.perf_counter() - started)
                except Exception:  # a metric is not worth a failed operation
                    logger.exception("recording an operation's metrics failed")

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        metrics = _metrics_of(context)
        subscribing = self._subscription is None and _operation_type(context) == OperationType.SUBSCRIPTION.value
        if metrics is not None and subscribing:
            try:
                field = metrics.subscription_field(_root_field(context))
            except Exception:
                logger.exception("naming a subscription for its gauge failed")
            else:
                metrics.subscription_started(field)
                self._subscription = field
        yield

    def _record(self, metrics: Metrics, failure: Exception | None, seconds: float) -> None:
        context = self.execution_context
        kind = _operation_type(context)
        count = self._counter(metrics)
        handed_over_to = handed_over()
        if handed_over_to is not None and failure is None:  # it goes on: counted when it ends
            handed_over_to.when_ended(lambda error: count(_code(error) if error else "ok", None))
            return
        count(_outcome(context, failure), None if kind == "subscription" else seconds)

    def _counter(self, metrics: Metrics) -> Callable[[str, float | None], None]:
        """Counts this operation with an outcome, ending its subscription's gauge; it keeps
        only what it needs of the operation, which may outlive it (handed over)."""
        context = self.execution_context
        kind, name, subscription = _operation_type(context), _operation_name(context), self._subscription
        ours = context.context
        signed_in = isinstance(ours, Context) and ours.auth.claims is not None
        self._subscription = None

        def count(outcome: str, seconds: float | None) -> None:
            if subscription is not None:
                metrics.subscription_ended(subscription)
            metrics.operation(kind, name, outcome, seconds, new_names=signed_in)

        return count


def _metrics_of(context: ExecutionContext) -> Metrics | None:
    ours = context.context
    return getattr(ours.services, "metrics", None) if isinstance(ours, Context) else None


def _operation_type(context: ExecutionContext) -> str:
    try:
        return context.operation_type.value
    except Exception:  # noqa: BLE001  (no document, or no operation of that name)
        return "unknown"


def _operation_name(context: ExecutionContext) -> str | None:
    try:
        return context.operation_name
    except Exception:  # noqa: BLE001
        return None


def _root_field(context: ExecutionContext) -> str | None:
    document = context.graphql_document
    operation = get_operation_ast(document, _operation_name(context)) if document else None
    selections = operation.selection_set.selections if operation else ()
    first = selections[0] if selections else None
    return first.name.value if isinstance(first, FieldNode) else None


def _outcome(context: ExecutionContext, failure: Exception | None) -> str:
    if failure is not None:
        coded = api_error_of(failure)
        return coded.code.value if coded is not None else ErrorCode.INTERNAL_SERVER_ERROR.value
    result = context.result
    errors = getattr(result, "errors", None) or context.pre_execution_errors
    return _code(errors[0]) if errors else "ok"


def _code(error: GraphQLError) -> str:
    code = (to_client_error(error).extensions or {}).get("code")
    return code if isinstance(code, str) else ErrorCode.INTERNAL_SERVER_ERROR.value
