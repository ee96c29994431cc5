"""Schemathesis against the GraphQL schema, in-process over ASGI, as a signed-in user: every
generated query and mutation is answered with data or coded errors, never with a 5xx, an
INTERNAL_SERVER_ERROR or a logged traceback.

The seed is fixed, so every run sends the same operations. FUZZ_EXAMPLES=5000 sends more
(never fewer than MIN_EXAMPLES); FUZZ_SEED=<n> sends another fixed sequence.

Every mutation is generated, the ones that end sessions too: logout and refreshToken only
act on a refresh token and changePassword only with the current password, which the
generator never sends, so the token stays good (an UNAUTHENTICATED answer fails the run).
Admin operations answer FORBIDDEN: the user is not an admin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.python import asgi
from starlette.applications import Starlette

from server.app import create_app
from tests.utils.factories import make_clock
from tests.utils.fuzzing import (
    FuzzRun,
    fuzz_config,
    fuzz_settings,
    is_problem_record,
    load_schema,
    open_account,
    register_scalars,
)

MIN_EXAMPLES = 500
EXAMPLES = max(MIN_EXAMPLES, int(os.environ.get("FUZZ_EXAMPLES", MIN_EXAMPLES)))
SEED = int(os.environ.get("FUZZ_SEED", "0"))


@pytest.fixture
def fuzz_app(tmp_path: Path) -> Iterator[Starlette]:
    yield create_app(fuzz_settings(tmp_path / "data"), clock=make_clock())
    # Schemathesis ran the lifespan (on its own event-loop thread) from the first request on.
    asgi.shutdown_lifespans()


def test_generated_operations_never_fail_the_server(fuzz_app: Starlette, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # a traceback logged below ERROR counts too
    register_scalars()
    account = open_account(load_schema(fuzz_app))
    schema = load_schema(fuzz_app, fuzz_config(account))
    run = FuzzRun(caplog)

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # nothing raises in `send`: problems are collected, not shrunk
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @seed(SEED)
    @given(case=schema.as_strategy())
    def send(case: schemathesis.Case) -> None:
        run.send(case)

    send()

    assert run.problems == [], run.report()
    assert [r.getMessage() for r in caplog.records if is_problem_record(r)] == []
    assert run.sent >= EXAMPLES
    operations = {operation.ok().label for operation in schema.get_all_operations()}
    assert set(run.labels) == operations, f"never generated: {sorted(operations - set(run.labels))}"
    # Most operations get past validation into the resolvers (about 60% answer without errors).
    assert run.answered_cleanly >= run.sent // 3, run.labels
