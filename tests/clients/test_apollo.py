"""Apollo Client 4 (Node) against a real server process: every tests/clients/apollo/*.test.mjs
under `node --test`, with GRAPHQL_URL pointing at the server."""

from __future__ import annotations

from pathlib import Path

from tests.utils.node import node_with, run_node_tests
from tests.utils.processes import clean_environment, run_server

APOLLO_DIR = Path(__file__).parent / "apollo"


def test_apollo_client_queries_mutates_and_subscribes(tmp_path: Path) -> None:
    node = node_with(APOLLO_DIR, "@apollo/client")
    env = clean_environment(
        DATA_DIR=str(tmp_path / "data"),
        MARKET_HOURS="always",
        MARKET_TICK_SECONDS="0.2",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB="8192",
    )
    with run_server(tmp_path, env=env) as server:
        returncode, output = run_node_tests(node, APOLLO_DIR, {"GRAPHQL_URL": f"{server.base_url}/graphql"})

    assert returncode == 0, f"node --test failed:\n{output}"
    assert server.errors() == [], f"the server logged errors while Apollo ran: {server.errors()}"
