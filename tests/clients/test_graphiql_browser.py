"""The self-hosted GraphiQL in headless Chromium against a real server: sign in, query, subscribe, offline.

The browser side is tests/clients/browser/graphiql.test.mjs (playwright-core driving the
system's Chromium; no browser download). Needs node, `npm ci` in tests/clients/browser, and
/usr/bin/chromium (`apt-get install -y chromium`); without them the test is skipped locally
and fails when CI is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.utils.node import node_with, run_node_tests
from tests.utils.processes import clean_environment, run_server
from tests.utils.servers import unavailable

BROWSER_TESTS = Path(__file__).parent / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


def _node() -> str:
    node = node_with(BROWSER_TESTS, "playwright-core")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install -y chromium)"))
    return node


def test_graphiql_signs_in_queries_and_subscribes_offline(tmp_path: Path) -> None:
    node = _node()
    server_env = clean_environment(
        MARKET_TICK_SECONDS="0.2",  # live quotes every 0.2 s: the subscription updates at once
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB=str(8 * 1024),
    )
    with run_server(tmp_path, env=server_env) as server:
        browser_env = {"GRAPHIQL_SERVER_URL": server.base_url, "CHROMIUM_PATH": str(CHROMIUM)}
        returncode, output = run_node_tests(node, BROWSER_TESTS, browser_env)
    server_log = "\n".join(server.log_lines[-40:])
    assert returncode == 0, f"{output}\nserver log:\n{server_log}"
    assert re.search(r"^\S+ pass [1-9]\d*$", output, re.MULTILINE), output  # the tests ran, not none
    assert server.errors() == [], f"the server logged errors while the browser ran: {server.errors()}"
