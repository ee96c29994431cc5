"""Real database servers for tests: skipped locally when absent, a failure when CI is set."""

from __future__ import annotations

import os

import pytest


def unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable: {type(error).__name__}: {error}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this must run)")
    pytest.skip(message)
