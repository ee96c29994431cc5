"""Apollo Client 4 (Node) against a real server process: every tests/clients/apollo/*.test.mjs
under `node --test`, with GRAPHQL_URL pointing at the server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.utils.processes import clean_environment, run_server
from tests.utils.servers import unavailable

APOLLO_DIR = Path(__file__).parent / "apollo"
NODE_TIMEOUT_SECONDS = 120.0
KILL_TIMEOUT_SECONDS = 15.0


def _node() -> str:
    node = shutil.which("node") or ""
    if not node:
        unavailable("node", FileNotFoundError("node is not on PATH"))
    if not (APOLLO_DIR / "node_modules" / "@apollo" / "client").is_dir():
        unavailable(
            "tests/clients/apollo/node_modules",
            FileNotFoundError("run `npm ci --prefix tests/clients/apollo` first"),
        )
    return node


def _run_node_tests(node: str, graphql_url: str) -> tuple[int, str]:
    # Its own process group: on a timeout the test files' child processes die with it.
    process = subprocess.Popen(
        [node, "--test", "--test-reporter=spec"],
        cwd=APOLLO_DIR,
        env={**os.environ, "GRAPHQL_URL": graphql_url, "NO_COLOR": "1"},
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


def test_apollo_client_queries_mutates_and_subscribes(tmp_path: Path) -> None:
    node = _node()
    env = clean_environment(
        DATA_DIR=str(tmp_path / "data"),
        MARKET_HOURS="always",
        MARKET_TICK_SECONDS="0.2",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB="8192",
    )
    with run_server(tmp_path, env=env) as server:
        returncode, output = _run_node_tests(node, f"{server.base_url}/graphql")

    assert returncode == 0, f"node --test failed:\n{output}"
    failures = [line for line in server.logs() if line.get("level") in {"ERROR", "CRITICAL"}]
    assert failures == [], f"the server logged errors while Apollo ran: {failures}"
