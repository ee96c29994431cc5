"""Per-caller rate limit on operations: per user when signed in, per client address otherwise.

Checked once per operation, after validation and before anything runs. Over the limit,
the operation does not run: its result is a RATE_LIMITED error with `retryAfter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from server.api.context import Context
from server.security.ratelimit import RateLimited


class OperationRateLimit(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            limits = context.services.limits
            claims = context.auth.claims
            try:
                if claims is not None:
                    await limits.user.hit(claims.user_id)
                else:
                    await limits.anonymous.hit(limits.address_key(context.client_ip))
            except RateLimited as error:  # coded like any other error, by ErrorCodes
                refusal = GraphQLError(str(error), original_error=error)
                self.execution_context.result = GraphQLExecutionResult(data=None, errors=[refusal])
        yield
