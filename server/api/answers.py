"""Answers to anonymous quote queries, reused for the rest of the market step they came from.

A ticker page polls the same `quote`/`quotes` query again and again, and the paper market's
quote of a symbol changes only when the market steps. So the bytes an identical anonymous
POST was answered with are the bytes executing it again would give, until the next step:
they are sent again without running GraphQL. Only answers with data and no errors are kept,
only for documents whose every root field is `quote`, `quotes` or `__typename`, and only
while the server's quotes come from the paper market (Alpaca's quotes have no steps). The
caller's rate limit and the operation's metrics apply to a reused answer as to any other.
`Cache-Control: no-cache` on the request asks for a fresh execution.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.identity import client_ip
from server.security.ratelimit import RateLimited
from server.services import Services

CACHEABLE_FIELDS = frozenset({"quote", "quotes", "__typename"})
MAX_BODY_BYTES = 4096
MAX_ENTRIES = 512


@dataclass(frozen=True, slots=True)
class Answer:
    step: int
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    operation_name: str | None


def market_step(services: Services) -> int | None:
    """The step the server's quotes belong to; None when they do not come in steps."""
    if services.quote_source is not services.paper_market:
        return None
    return services.market.current_step()


def reusable_operation(body: bytes) -> tuple[bool, str | None]:
    """Whether the request's answer may be reused, and the operation's name (for metrics)."""
    try:
        request = json.loads(body)
        document = parse(request["query"], no_location=True)
    except (ValueError, KeyError, TypeError, GraphQLError, RecursionError):
        return False, None
    if not isinstance(request, dict) or set(request) - {"query", "variables", "operationName"}:
        return False, None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or len(document.definitions) != 1:
        return False, None
    operation = operations[0]
    root_fields_ok = all(
        isinstance(selection, FieldNode) and selection.name.value in CACHEABLE_FIELDS and not selection.directives
        for selection in operation.selection_set.selections
    )
    name = operation.name.value if operation.name else None
    return operation.operation is OperationType.QUERY and root_fields_ok and not operation.directives, name


class AnswerCache:
    """Answers by request body, each valid in the market step it was computed in (LRU-bounded)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()
        self._max_entries = max_entries

    def get(self, body: bytes, step: int) -> Answer | None:
        answer = self._answers.get(body)
        if answer is None or answer.step != step:
            return None
        self._answers.move_to_end(body)
        return answer

    def put(self, body: bytes, answer: Answer) -> None:
        self._answers[body] = answer
        self._answers.move_to_end(body)
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)


async def answer(cache: AnswerCache, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
    """Send a reusable answer for this request, or let `app` answer it and keep what may be reused."""
    if not _candidate(scope):
        await app(scope, receive, send)
        return
    messages, body, complete = await _read_body(receive)
    replay = _replaying(messages, receive)
    services: Services = scope["app"].state.services
    step = market_step(services)
    if not complete or step is None:
        await app(scope, replay, send)
        return
    started = time.perf_counter()
    connection = HTTPConnection(scope)
    key = connection.headers.get("accept", "").encode() + b"\n" + body
    reused = cache.get(key, step)
    if reused is not None and await _admitted(services, client_ip(connection, services.settings.trusted_proxies)):
        services.metrics.operation("query", reused.operation_name, "ok", time.perf_counter() - started)
        await send({"type": "http.response.start", "status": reused.status, "headers": list(reused.headers)})
        await send({"type": "http.response.body", "body": reused.body})
        return
    recorder = _Recorder(send)
    await app(scope, replay, recorder.send)
    if recorder.status == 200 and not _has_errors(recorder.body):
        reusable, name = reusable_operation(body)
        if reusable:
            cache.put(key, Answer(step, recorder.status, tuple(recorder.headers), recorder.body, name))


def _candidate(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
        return False
    headers = dict(scope["headers"])
    return (
        b"authorization" not in headers
        and headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"application/json"
        and b"no-cache" not in headers.get(b"cache-control", b"").lower()
    )


async def _read_body(receive: Receive) -> tuple[list[Message], bytes, bool]:
    """The messages read, the body, and whether it is all there (and small enough to key on)."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, body, False
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return messages, body, False
        if not message.get("more_body", False):
            return messages, body, True


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class _Recorder:
    """Passes a response on while keeping a copy of it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
        await self._send(message)


def _has_errors(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return True
    return not isinstance(answer, dict) or "errors" in answer or answer.get("data") is None


async def _admitted(services: Services, caller: str | None) -> bool:
    """The anonymous caller's operation rate limit, as OperationRateLimit applies it.
    Refused: False, and the request goes the usual way, which answers RATE_LIMITED."""
    try:
        await services.limits.anonymous.hit(caller or "unknown")
    except RateLimited:
        return False
    return True
