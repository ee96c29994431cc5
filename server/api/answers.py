"""Answers to anonymous quote queries, reused for the rest of the market step they came from.

A ticker page polls the same `quote`/`quotes` query again and again, and the paper market's
quote of a symbol changes only when the market steps. So the bytes an identical anonymous
POST was answered with are the bytes executing it again would give, until the next step:
they are sent again without running GraphQL. Identical requests that arrive while the first
is being answered wait for its answer rather than running GraphQL beside it. Only answers
with data and no errors are kept, only for documents whose every root field is `quote`,
`quotes` or `__typename`, and only while the server's quotes come from the paper market
(Alpaca's quotes have no steps). The caller's rate limit and the operation's metrics apply
to a reused answer as to any other. `Cache-Control: no-cache` (or `no-store`, `max-age=0`,
`Pragma: no-cache`) on the request asks for a fresh execution. Other requests pass straight
through, neither read ahead of the app (beyond a small body) nor recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.identity import client_ip
from server.services import Services

CACHEABLE_FIELDS = frozenset({"quote", "quotes", "__typename"})
MAX_BODY_BYTES = 4096
MAX_ANSWER_BYTES = 64 * 1024  # larger answers are not kept: at most MAX_ENTRIES of these are held
MAX_ENTRIES = 256
FRESH_DIRECTIVES = (b"no-cache", b"no-store", b"max-age=0")
STREAMED_TYPES = (b"multipart/", b"text/event-stream")


@dataclass(frozen=True, slots=True)
class Answer:
    step: int
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
    """Answers by request, each valid in the market step it was computed in (LRU-bounded).

    Only one market's current step is ever held: a newer step or another market (an app
    whose lifespan ran again numbers its steps afresh) empties the cache."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()
        self._max_entries = max_entries
        self._market: object | None = None
        self._step: int | None = None
        self._in_flight: dict[tuple[int, bytes], asyncio.Future[Answer | None]] = {}

    def get(self, market: object, step: int, key: bytes) -> Answer | None:
        answer = self._answers.get(key) if market is self._market and step == self._step else None
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, market: object, key: bytes, answer: Answer) -> None:
        if market is not self._market or answer.step != self._step:
            if self._step is not None and market is self._market and answer.step < self._step:
                return  # computed in a step already gone
            self._answers.clear()
            self._market, self._step = market, answer.step
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)

    def awaited(self, step: int, key: bytes) -> asyncio.Future[Answer | None] | None:
        """The answer to an identical request of this step still being computed, if any."""
        return self._in_flight.get((step, key))

    @contextmanager
    def computing(self, market: object, step: int, key: bytes) -> Iterator[Callable[[Answer], None]]:
        """While an answer is computed, identical requests of the step wait for it; they get
        None (and compute their own) if it could not be kept."""
        flight: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._in_flight[(step, key)] = flight

        def keep(answer: Answer) -> None:
            self.put(market, key, answer)
            flight.set_result(answer)

        try:
            yield keep
        finally:
            if self._in_flight.get((step, key)) is flight:
                del self._in_flight[(step, key)]
            if not flight.done():
                flight.set_result(None)

    def __len__(self) -> int:
        return len(self._answers)


async def answer(cache: AnswerCache, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
    """Send a reusable answer for this request, or let `app` answer it and keep what may be reused."""
    accept = _candidate(scope)
    if accept is None:
        await app(scope, receive, send)
        return
    messages, body, complete = await _read_body(receive)
    replay = _replaying(messages, receive)
    services: Services = scope["app"].state.services
    step = market_step(services)
    if step is None or not complete:
        await app(scope, replay, send)
        return
    started = time.perf_counter()
    connection = HTTPConnection(scope)
    key = accept + b"\n" + body
    reused = cache.get(services.market, step, key)
    if reused is None and (flight := cache.awaited(step, key)) is not None:
        reused = await asyncio.shield(flight)
    if reused is not None:
        if await _admitted(services, client_ip(connection, services.settings.trusted_proxies)):
            seconds = time.perf_counter() - started
            # Only anonymous requests come here: their names take no label slot (see OperationMetrics).
            services.metrics.operation("query", reused.operation_name, "ok", seconds, new_names=False)
            await send({"type": "http.response.start", "status": 200, "headers": list(reused.headers)})
            await send({"type": "http.response.body", "body": reused.body})
            return
        name = reused.operation_name  # over the limit: executed, to answer RATE_LIMITED as usual
    else:
        # Parsed only when it could be a quote query; what is parsed is not kept (bodies may hold passwords).
        reusable, name = reusable_operation(body) if _mentions_quotes_only(body) else (False, None)
        if not reusable:
            await app(scope, replay, send)
            return
    recorder = _Recorder(send)
    with cache.computing(services.market, step, key) as keep:
        await app(scope, replay, recorder.send)
        if recorder.kept is not None and not _has_errors(recorder.kept):
            keep(Answer(step, tuple(recorder.headers), recorder.kept, name))


def _mentions_quotes_only(body: bytes) -> bool:
    """A cheap necessary condition of reusable_operation."""
    return b"quote" in body and b"mutation" not in body and b"subscription" not in body


def _candidate(scope: Scope) -> bytes | None:
    """The request's Accept header (part of the answer's key), if its answer may be reused."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
        return None
    content_type, accept, fresh = b"", b"", False
    for name, value in scope["headers"]:
        if name == b"authorization":
            return None
        lowered = value.lower()
        if name == b"content-type":
            content_type = lowered.split(b";")[0].strip()
        elif name == b"accept":
            accept += lowered
        elif name == b"cache-control":
            fresh = fresh or any(directive in lowered for directive in FRESH_DIRECTIVES)
        elif name == b"pragma":
            fresh = fresh or b"no-cache" in lowered
    streamed = any(kind in accept for kind in STREAMED_TYPES)
    return accept if content_type == b"application/json" and not fresh and not streamed else None


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
    """Passes a response on, keeping a copy of a whole 200 JSON answer of at most MAX_ANSWER_BYTES."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.headers: list[tuple[bytes, bytes]] = []
        self._parts: list[bytes] | None = None  # None: not worth keeping
        self._size = 0
        self.kept: bytes | None = None  # the whole answer, once complete

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.headers = list(message.get("headers", []))
            content_type = dict(self.headers).get(b"content-type", b"")
            if message["status"] == 200 and content_type.startswith(b"application/"):
                self._parts = []
        elif message["type"] == "http.response.body" and self._parts is not None:
            part = message.get("body", b"")
            self._size += len(part)
            if self._size > MAX_ANSWER_BYTES:
                self._parts = None
            else:
                self._parts.append(part)
                if not message.get("more_body", False):
                    self.kept = b"".join(self._parts)
        await self._send(message)


def _has_errors(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return True
    return not isinstance(answer, dict) or "errors" in answer or answer.get("data") is None


async def _admitted(services: Services, caller: str | None) -> bool:
    """The anonymous caller's operation rate limit, as OperationRateLimit applies it.
    Refused: False, and the request goes the usual way, which answers (and counts) RATE_LIMITED."""
    return await services.limits.anonymous.try_hit(services.limits.address_key(caller))
