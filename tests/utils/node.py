"""Node test suites (`node --test`) run against our servers: found, run bounded, killed whole."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.utils.servers import unavailable

# Past the suites' own per-test limits (120 s in the browser suite), so node reports which step hung.
NODE_TIMEOUT_SECONDS = 180.0
KILL_TIMEOUT_SECONDS = 15.0


def node_with(package_dir: Path, module: str) -> str:
    """The `node` executable, once `module` is installed in `package_dir` (else skip, or fail under CI)."""
    node = shutil.which("node")
    if node is None:
        unavailable("node", FileNotFoundError("node is not on PATH"))
    if not (package_dir / "node_modules" / module).is_dir():
        unavailable(f"{module} in {package_dir}", FileNotFoundError(f"run `npm ci --prefix {package_dir}` first"))
    assert node is not None  # unavailable() has skipped or failed the test
    return node


def run_node_tests(node: str, package_dir: Path, env: dict[str, str]) -> tuple[int, str]:
    """`node --test` in `package_dir` with `env` added; its exit code and output.

    Its own process group: on a timeout the test files' children (a browser) die with it."""
    process = subprocess.Popen(
        [node, "--test", "--test-reporter=spec"],
        cwd=package_dir,
        env={**os.environ, "NO_COLOR": "1", **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=NODE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=KILL_TIMEOUT_SECONDS)
        pytest.fail(f"node --test did not finish within {NODE_TIMEOUT_SECONDS} s:\n{output}")
    return process.returncode, output
