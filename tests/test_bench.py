"""The benchmarks still run (in miniature): a benchmark nobody can run proves nothing."""

from __future__ import annotations

import asyncio
import re

import pytest

import bench.login
import bench.matching
import bench.orders
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
    rows = [line.split("|")[2] for line in table.splitlines() if line.startswith("| ") and "operation" not in line]
    assert len(rows) == 3
    assert all(float(row.split("(")[0].replace(",", "")) > 0 for row in rows)


def test_login_benchmark_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.login, "PHASE_SECONDS", 0.5)
    monkeypatch.setattr(bench.login, "WARMUP_SECONDS", 0.1)
    bench.login.main(["--time-cost", "1", "--memory-kib", "8192"])
    table = capsys.readouterr().out
    assert "argon2id 1 passes, 8 MiB" in table
    rows = [line.split("|")[2:5] for line in table.splitlines() if line.startswith(("| alone", "| with"))]
    assert len(rows) == 2
    assert all(float(cell.replace(",", "")) > 0 for row in rows for cell in row)
    assert re.search(r"p99 ratio \(with logins / alone\): \d+\.\d\d", table)
    assert re.search(r"logins completed: [1-9]", table)


def test_order_entry_benchmark_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.orders, "WARMUP_SECONDS", 0.1)
    bench.orders.main(["--seconds", "0.5", "--clients", "2"])
    table = capsys.readouterr().out
    rows = [line.split("|")[1:6] for line in table.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == 1
    assert all(float(cell.replace(",", "")) > 0 for cell in rows[0])
    assert "target: at least 500 orders/s" in table


def test_fanout_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import bench.fanout

    bench.fanout.main(["--smoke"])
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[3:10] for line in table.splitlines() if line.startswith("| ")}
    for phase in ("fan-out", "most messages"):
        cells = [float(cell.strip(" %").replace(",", "")) for cell in rows[phase]]
        subscriptions, _, messages, per_second, _, p50, p99 = cells
        assert subscriptions == 20
        assert messages > 0
        assert per_second > 0
        assert 0 < p50 <= p99 < 10_000  # milliseconds, measured
    assert re.search(r"memory per subscription: -?\d+\.\d KiB", table)
    assert "targets: p99 under 100 ms: " in table
