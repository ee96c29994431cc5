from __future__ import annotations

import asyncio
import threading
import time

import pytest

from server.threads import WorkerSlots, WorkerTimeoutError

pytestmark = pytest.mark.anyio


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = self.most = 0

    def job(self, seconds: float) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(seconds)
        with self._lock:
            self.running -= 1
        return "done"


async def test_jobs_run_in_threads_up_to_the_limit() -> None:
    tally = Tally()
    workers = WorkerSlots(2, timeout_seconds=5)
    assert await asyncio.gather(*(workers.run(tally.job, 0.05) for _ in range(6))) == ["done"] * 6
    assert tally.most == 2


async def test_callers_that_give_up_do_not_free_a_slot_still_in_use() -> None:
    tally = Tally()
    workers = WorkerSlots(1, timeout_seconds=0.1)

    async def caller(delay: float) -> object:
        await asyncio.sleep(delay)  # each arrives after the previous one gave up
        try:
            return await workers.run(tally.job, 0.3)
        except WorkerTimeoutError as error:
            return error

    results = await asyncio.gather(*(caller(0.12 * n) for n in range(4)))
    assert all(isinstance(result, WorkerTimeoutError) for result in results)
    await asyncio.sleep(0.7)  # the threads that did start finish
    assert tally.most == 1  # never a second thread beside an abandoned one
    assert await workers.run(tally.job, 0) == "done"  # the slot came back when the thread ended


async def test_a_failing_job_raises_its_own_error() -> None:
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await WorkerSlots(1, timeout_seconds=1).run(boom)
