"""Schema extensions: the parser cache, per-operation loaders, and the query limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from server.api.context import Context, fresh_loaders
from server.api.throttle import OperationRateLimit
from server.metrics.graphql import OperationMetrics

CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000


def cached_parse(query: str, max_tokens: int) -> DocumentNode:
    """The document of `query` as the operations' parser cache makes it (the same cache:
    parsing it here first means Strawberry does not parse it again)."""
    return ParserCache(maxsize=CACHE_SIZE).cached_parse_document(query, max_tokens=max_tokens)


class SafeParserCache(ParserCache):
    """ParserCache whose syntax errors reach the client as errors.

    Strawberry's ParserCache parses inside the parsing hook's setup, where a syntax error
    escapes the operation (over WebSocket the client then gets nothing). Leaving the
    document unset on a syntax error lets Strawberry parse again and report it properly.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            context.graphql_document = None
        yield


class OperationLoaders(SchemaExtension):
    """Fresh DataLoaders for every operation.

    An HTTP request is one operation, but a WebSocket context lives as long as the
    connection: its loaders must not cache quotes from one operation to the next.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            with fresh_loaders(context):
                yield
        else:
            yield


def extensions(limits: QueryLimits) -> list[Callable[[], SchemaExtension]]:
    # The limiters' rule classes are built once: the validation cache keys on the rules,
    # so fresh classes per request would never hit (and would churn the cache).
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    return [
        OperationMetrics,  # first: its time spans the others' work too
        lambda: SafeParserCache(maxsize=CACHE_SIZE),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        OperationRateLimit,
        OperationLoaders,
    ]
