"""The benchmarks still run (in miniature): a benchmark nobody can run proves nothing."""

from __future__ import annotations

import asyncio

import pytest

import bench.login
import bench.matching
import bench.quotes


def test_matching_benchmark_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.matching, "ORDERS", 200)
    monkeypatch.setattr(bench.matching, "ROUNDS", 1)
    bench.matching.main()
    table = capsys.readouterr().out
    assert "| workload | no listener | with a trade-update listener |" in table
    rows = [line.split("|")[2:4] for line in table.splitlines() if line.startswith("| ") and "orders" in line]
    assert len(rows) == 3
    assert all(float(cell.replace(",", "")) > 0 for row in rows for cell in row)


def test_quote_benchmark_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.quotes, "ROUNDS", 1)
    monkeypatch.setattr(bench.quotes, "ROUND_SECONDS", 0.05)
    asyncio.run(bench.quotes.main())
    table = capsys.readouterr().out
    assert "GraphQL `quote`" in table
    assert "vs. simulator" in table


def test_login_benchmark_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.login, "PHASE_SECONDS", 0.5)
    bench.login.main()
    table = capsys.readouterr().out
    assert "| with 10 logins/s alongside |" in table
    assert "p99 ratio (with logins / alone):" in table
