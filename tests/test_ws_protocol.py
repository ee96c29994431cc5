"""Frames written within one event-loop turn reach the socket as one write, in order."""

from __future__ import annotations

import asyncio

import pytest

from server.ws_protocol import FLUSH_BYTES, CoalescingTransport

pytestmark = pytest.mark.anyio


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def test_writes_of_one_turn_are_joined_and_sent_in_the_next() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    for frame in (b"one", b"", b"two", bytearray(b"three")):
        transport.write(frame)
    assert real.writes == []
    await asyncio.sleep(0)
    assert real.writes == [b"onetwothree"]
    transport.write(b"four")
    await asyncio.sleep(0)
    assert real.writes == [b"onetwothree", b"four"]
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)


async def test_closing_writes_what_is_pending_first_and_aborting_drops_it() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"close frame")
    transport.close()
    assert (real.writes, real.closed) == ([b"close frame"], True)
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert real.writes == [b"close frame"]  # nothing reaches a closing transport

    other = RecordingTransport()
    aborted = CoalescingTransport(other, asyncio.get_running_loop())
    aborted.write(b"pending")
    aborted.abort()
    await asyncio.sleep(0)
    assert (other.writes, other.aborted) == ([], True)


async def test_a_large_backlog_goes_out_at_once_for_flow_control_to_see() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"small")
    transport.write(b"x" * FLUSH_BYTES)
    assert real.writes == [b"small" + b"x" * FLUSH_BYTES]  # not held until the next turn
    transport.write(b"after")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"after"]
