"""Run `python -m server ...` as a real process, with bounded waits."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from server.settings import Settings

STARTUP_TIMEOUT_SECONDS = 60.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0
_LISTENING = re.compile(r"Uvicorn running on http://([\d.]+):(\d+)")


def clean_environment(**overrides: str) -> dict[str, str]:
    """The current environment without any of the server's settings, plus `overrides`."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in ours}
    return {**env, **overrides}


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_lines: list[str] = field(default_factory=list)

    def logs(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_lines if line.startswith("{")]

    def errors(self) -> list[dict[str, object]]:
        """The ERROR and CRITICAL lines the server logged so far."""
        return [line for line in self.logs() if line.get("level") in {"ERROR", "CRITICAL"}]


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


@contextmanager
def run_server(
    cwd: Path,
    args: Sequence[str] = ("serve", "--port", "0"),
    env: dict[str, str] | None = None,
    *,
    module: str = "server",
) -> Iterator[ServerProcess]:
    """Start `python -m MODULE ARGS` (port 0: a free one) and wait until uvicorn listens."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env or clean_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    server = ServerProcess(process=process, base_url="")
    ended = False  # the pump's end-of-output mark has been read
    try:
        while not server.base_url:
            line = lines.get(timeout=STARTUP_TIMEOUT_SECONDS)
            if line is None:
                ended = True
                raise RuntimeError("server exited before listening:\n" + "\n".join(server.log_lines))
            server.log_lines.append(line)
            if match := _LISTENING.search(line):
                server.base_url = f"http://{match[1]}:{match[2]}"
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        while not ended:
            line = lines.get(timeout=SHUTDOWN_TIMEOUT_SECONDS)
            ended = line is None
            if line is not None:
                server.log_lines.append(line)
        if process.stdout is not None:
            process.stdout.close()
