"""The self-hosted GraphiQL in headless Chromium against a real server: sign in, query, subscribe, offline.

The browser side is tests/clients/browser/graphiql.test.mjs (playwright-core driving the
system's Chromium; no browser download). Needs node, `npm ci` in tests/clients/browser, and
/usr/bin/chromium (`apt-get install -y chromium`); without them the test is skipped locally
and fails when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.utils.processes import clean_environment, run_server
from tests.utils.servers import unavailable

BROWSER_TESTS = Path(__file__).parent / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
NODE_TIMEOUT_SECONDS = 120.0


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        unavailable("node", FileNotFoundError("node is not on PATH"))
    if not (BROWSER_TESTS / "node_modules" / "playwright-core").is_dir():
        unavailable("playwright-core", FileNotFoundError(f"run `npm ci` in {BROWSER_TESTS}"))
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install -y chromium)"))
    assert node is not None  # unavailable() has skipped or failed the test
    return node


def test_graphiql_signs_in_queries_and_subscribes_offline(tmp_path: Path) -> None:
    node = _node()
    server_env = clean_environment(
        MARKET_TICK_SECONDS="0.2",  # live quotes every 0.2 s: the subscription updates at once
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB=str(8 * 1024),
    )
    with run_server(tmp_path, env=server_env) as server:
        browser_env = {**os.environ, "GRAPHIQL_SERVER_URL": server.base_url, "CHROMIUM_PATH": str(CHROMIUM)}
        try:
            run = subprocess.run(
                [node, "--test", "--test-reporter=spec"],
                cwd=BROWSER_TESTS,
                env=browser_env,
                capture_output=True,
                text=True,
                timeout=NODE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            output = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout
            raise AssertionError(f"the browser test ran past {NODE_TIMEOUT_SECONDS} s:\n{output}") from error
    server_log = "\n".join(server.log_lines[-40:])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nserver log:\n{server_log}"
    assert "pass 1" in run.stdout, run.stdout
