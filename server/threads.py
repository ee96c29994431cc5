"""Blocking work (argon2, alpaca-py's REST calls) in worker threads, a bounded number at once.

A slot is freed when its thread finishes, not when the caller stops waiting: a thread
cannot be stopped, so a caller that times out must not let another job start beside the
one still running, or a backlog would pile threads onto the cores the event loop needs.
The timeout covers both the wait for a slot and the wait for the result.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


class WorkerTimeoutError(Exception):
    """No slot came free, or the job did not finish, within the timeout."""


class WorkerSlots:
    def __init__(self, limit: int, *, timeout_seconds: float, executor: Executor | None = None) -> None:
        """`executor`: threads of one's own, so jobs that hang for their whole timeout never
        take the loop's default executor from everything else that uses it."""
        self._slots = asyncio.Semaphore(limit)
        self._timeout = timeout_seconds
        self._executor = executor

    async def run(self, function: Callable[..., T], *args: object) -> T:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout)
        except TimeoutError:
            raise WorkerTimeoutError from None
        if self._executor is None:
            job = asyncio.ensure_future(asyncio.to_thread(function, *args))
        else:
            job = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(function, *args))
        job.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.shield(job), self._timeout)
        except TimeoutError:
            raise WorkerTimeoutError from None

    def _finished(self, job: asyncio.Future[object]) -> None:
        self._slots.release()
        if not job.cancelled():
            job.exception()  # an abandoned job's failure is expected; do not report it as unretrieved
