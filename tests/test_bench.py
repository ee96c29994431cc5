"""The benchmarks still run (in miniature): a benchmark nobody can run proves nothing."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import bench.__main__ as runner
import bench.bare_strawberry
import bench.fanout
import bench.http_quotes
import bench.login
import bench.matching
import bench.orders
import bench.plain_route
import bench.quote_calls
import bench.quotes
from tests.utils.processes import clean_environment

REPOSITORY = Path(__file__).resolve().parent.parent


def _rows(printed: str, first_column: str) -> dict[str, list[str]]:
    """The printed Markdown tables' rows (header rows excluded), by their first cell."""
    rows = {}
    for line in printed.splitlines():
        if line.startswith("| ") and not line.startswith(f"| {first_column} |"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _number(cell: str) -> float:
    return float(cell.split("(")[0].strip(" %").replace(",", ""))


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_matching_benchmark_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench.matching.main(["--orders", "200", "--rounds", "1", "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    assert "| workload | no listener | with a trade-update listener |" in printed
    rows = _rows(printed, "workload")
    assert len(rows) == 3
    assert all(_number(cell) > 0 for row in rows.values() for cell in row)
    result = _report(tmp_path / "r.json")
    assert result["tables"][0]["rows"] == [[name, *cells] for name, cells in rows.items()]


@pytest.mark.parametrize("workload", ["market", "resting", "mixed"])
def test_matching_benchmark_runs_one_workload_once(capsys: pytest.CaptureFixture[str], workload: str) -> None:
    bench.matching.main(["--once", workload, "--orders", "20"])
    bench.matching.main(["--once", workload, "--orders", "20", "--no-listener"])
    assert (
        capsys.readouterr().out
        == f"20 submissions: {workload}, with a listener\n20 submissions: {workload}, no listener\n"
    )


@pytest.mark.parametrize(("slowest", "met"), [(49_999, False), (50_000, True)])
def test_matching_target_is_judged_on_the_slowest_workload_with_a_listener(
    monkeypatch: pytest.MonkeyPatch, slowest: int, met: bool
) -> None:
    """Made-up rates: the workloads without a listener are far slower, and do not count."""
    (_, fast), (name, slow), (_, other) = bench.matching.WORKLOADS
    rates = {fast: 10**6, slow: slowest, other: 10**6}

    def measure(build: bench.matching.Workload, listening: bool, orders: int, rounds: int) -> float:
        return rates[build] if listening else 1.0

    monkeypatch.setattr(bench.matching, "measure", measure)
    (target,) = bench.matching.run(orders=1, rounds=1).targets
    assert target.met is met
    assert target.measured == f"slowest: {name}, {slowest:,}/s"


def test_quote_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.quotes.main(["--quick"])
    rows = _rows(capsys.readouterr().out, "operation")
    assert len(rows) == 3
    assert all(_number(row[0]) > 0 for row in rows.values())


def test_http_quote_benchmark_compares_graphql_with_the_plain_route(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench.http_quotes.main(["--quick", "--connections", "4", "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    rows = _rows(printed, "route")
    routes = (
        bench.http_quotes.TRIVIAL,
        bench.http_quotes.PLAIN,
        bench.http_quotes.GRAPHQL,
        bench.http_quotes.GRAPHQL_FRESH,
    )
    for route in routes:
        rate, p50, p99, _, _, _, failures = rows[route.name]
        assert _number(rate) > 0
        assert 0 < _number(p50) <= _number(p99) < 10_000  # milliseconds, measured
        assert failures == "0"
    assert re.search(r"GraphQL / plain: \d+\.\d\d of the requests per second", printed)
    assert len(_report(tmp_path / "r.json")["targets"]) == 2


def _made_up_round(route: bench.http_quotes.Route, requests: int) -> bench.http_quotes.Round:
    """A one-second round that answered `requests` requests."""
    return bench.http_quotes.Round(route, 1.0, [0.001] * requests, Counter(), server_cpu=0.5, load_cpu=0.1)


@pytest.mark.parametrize(
    ("graphql", "fresh", "met", "fresh_line_end"),
    [
        (500, 499, (True, False), "NOT met (0.50: 499 against 1,000)"),  # 0.499, printed to two places
        (499, 500, (False, True), "met (0.50: 500 against 1,000)"),
    ],
)
def test_http_quote_targets_are_met_from_half_the_plain_routes_median_rate(
    graphql: int, fresh: int, met: tuple[bool, bool], fresh_line_end: str
) -> None:
    """Made-up rounds: the plain route's median is 1,000 a second (its mean is lower), so half is 500."""
    h = bench.http_quotes
    plain = [_made_up_round(h.PLAIN, requests) for requests in (1000, 10, 1000)]
    rounds = [
        _made_up_round(h.TRIVIAL, 2000),
        *plain,
        _made_up_round(h.GRAPHQL, graphql),
        _made_up_round(h.GRAPHQL_FRESH, fresh),
    ]
    args = argparse.Namespace(connections=4, rounds=3, seconds=1.0, warmup=0.0)
    reused, executed = h.report(rounds, args).targets
    assert (reused.met, executed.met) == met
    assert reused.measured == f"0.50: {graphql} against 1,000"
    assert executed.line().endswith(f": {fresh_line_end}")


def test_plain_route_answers_what_the_graphql_quote_answers(tmp_path: Path) -> None:
    """The baseline is only fair if both routes answer the same thing: the same fields of the same quote."""
    # The market steps a minute after start-up: both answers come from its first step.
    environment = clean_environment(DATA_DIR=str(tmp_path), MARKET_TICK_SECONDS="60")
    with (
        bench.plain_route.running(environment) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        plain = http.get("/plain/quote", params={"symbol": " aapl"}).json()
        graphql = http.post("/graphql", json={"query": bench.http_quotes.GRAPHQL_QUERY}).json()["data"]["quote"]
        unknown = http.get("/plain/quote", params={"symbol": "ZZZZ"})
        malformed = http.get("/plain/quote")
    assert plain == graphql
    assert list(plain) == list(bench.plain_route.FIELDS)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "BAD_USER_INPUT")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "BAD_USER_INPUT")
    assert not [log for log in server.logs() if log.get("level") == "ERROR"]


def test_quote_calls_benchmark_counts_one_call_per_request(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench.quote_calls.main(["--requests", "2", "--json", str(tmp_path / "r.json")])
    rows = _rows(capsys.readouterr().out, "request")
    assert len(rows) == 3
    for requests, calls, per_request, symbols, _ in rows.values():
        assert (requests, calls, per_request) == ("2", "2", "1")
        carried, wanted = symbols.split(" of ")
        assert carried == wanted
    assert [target["met"] for target in _report(tmp_path / "r.json")["targets"]] == [True]


def test_login_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.login.main(["--quick", "--time-cost", "1", "--memory-kib", "8192"])
    printed = capsys.readouterr().out
    assert "argon2id 1 passes, 8 MiB" in printed
    rows = _rows(printed, "quote query")
    assert len(rows) == 2
    assert all(_number(cell) > 0 for row in rows.values() for cell in row)
    assert re.search(r"p99 ratio \(with logins / alone\): \d+\.\d\d", printed)
    assert re.search(r"logins completed: [1-9]", printed)
    assert re.search(r"target: quote p99 at most 2x with logins: (met|NOT met)", printed)


def test_order_entry_benchmark_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench.orders.main(["--seconds", "0.5", "--warmup", "0.1", "--clients", "2", "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    rows = [line.split("|")[1:8] for line in printed.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == 1
    assert rows[0][0].strip() == "2"
    assert all(_number(cell) > 0 for cell in rows[0][1:6])
    result = _report(tmp_path / "r.json")
    assert result["targets"] == []  # the target is set at 16 clients
    assert result["figures"]["failures"] == {}
    assert re.search(r"server CPU: \d+% of one core, \d+\.\d ms per order", printed)


def test_fanout_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.fanout.main(["--quick"])
    printed = capsys.readouterr().out
    rows = _rows(printed, "phase")
    for phase in ("fan-out", "most messages"):
        subscriptions, _, messages, per_second, _, p50, p99 = (_number(cell) for cell in rows[phase][1:8])
        assert subscriptions == 20
        assert messages > 0
        assert per_second > 0
        assert 0 < p50 <= p99 < 10_000  # milliseconds, measured
    assert re.search(r"memory per subscription: -?\d+\.\d KiB", printed)
    assert "target: at least 10,000 messages/s from one worker: NOT met" in printed


def test_runner_writes_a_document_with_the_machine_the_figures_and_the_notes(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "bench", "--quick", "--only", "matching,quote_calls", "--output", str(output)]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    text = output.read_text()
    assert text.startswith("# Benchmarks\n")
    assert re.search(r"- \*\*Machine\*\*: .+, \d+ cores, ", text)
    assert re.search(r"strawberry-graphql \d+\.\d+", text)
    assert "`python -m bench --quick`" in text
    assert "**A quick run**" in text
    assert "## Paper exchange matching" in text
    assert "Command: `python -m bench.matching --quick`" in text
    assert "| workload | no listener | with a trade-update listener |" in text
    assert "| 50 positions, each with its quote | 3 | 3 | 1 | 50 of 50 |" in text
    assert "- target, 1 quote call per request, with every symbol in it: met" in text
    assert (REPOSITORY / "bench" / "notes" / "quote_calls.md").read_text().strip() in text
    assert "## Subscription fan-out" not in text


def test_runner_keeps_going_past_a_benchmark_that_fails_or_hangs(tmp_path: Path) -> None:
    missing = runner.Benchmark("no_such_benchmark", "Fails")
    failed = runner.run_one(missing, (), quick=True, timeout=60, scratch=tmp_path)
    assert failed.failure == "exited with status 1"
    assert "No module named bench.no_such_benchmark" in failed.output

    quotes = next(benchmark for benchmark in runner.BENCHMARKS if benchmark.name == "quotes")
    hung = runner.run_one(quotes, ("--rounds", "1", "--seconds", "600"), quick=False, timeout=3.0, scratch=tmp_path)
    assert hung.failure == "did not finish within 3 s (stopped)"
    assert hung.seconds < 3.0 + runner.STOP_GRACE_SECONDS + 5

    outcomes = [runner.Outcome(missing, [failed]), runner.Outcome(quotes, [hung])]
    text = runner.document(outcomes, runner.Machine.now(), quick=False, only=True, seconds=1.0)
    assert "| Fails |  | **did not run** | exited with status 1 |" in text
    assert "**`python -m bench.no_such_benchmark --quick` exited with status 1**; the end of its output:" in text
    assert "did not finish within 3 s (stopped)" in text


def _state(pid: int) -> str:
    """A process's state letter (Z: a zombie), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_stopped_benchmark_takes_the_processes_it_started_with_it(tmp_path: Path) -> None:
    """A benchmark's servers run in its process group: stopping it on a timeout stops them too."""
    child_pid = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time, pathlib\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(child_pid)!r}).write_text(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not child_pid.exists() or not child_pid.read_text():
            assert time.monotonic() < deadline, "the child was not started"
            time.sleep(0.05)
        runner._stop_group(process)
        assert process.poll() is not None
        deadline = time.monotonic() + 10
        while _state(int(child_pid.read_text())) not in {"Z", "gone"}:
            assert time.monotonic() < deadline, "the benchmark's child outlived it"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_every_benchmark_has_notes_and_the_common_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert (runner.NOTES / "intro.md").read_text().strip()
    for benchmark in runner.BENCHMARKS:
        assert (runner.NOTES / f"{benchmark.name}.md").read_text().strip()
        module = importlib.import_module(benchmark.module)
        with pytest.raises(SystemExit):
            module.main(["--help"])
        printed = capsys.readouterr().out
        assert "--quick" in printed
        assert "--json PATH" in printed


def test_a_partial_or_quick_run_never_overwrites_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--quick"], ["--only", "matching"]):
        with pytest.raises(SystemExit):
            runner.main(argv)
        assert "give --output PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["--only", "nope", "--output", "x.md"])
    assert "unknown benchmark(s): nope" in capsys.readouterr().err


def test_bare_strawberry_prints_both_costs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.bare_strawberry.main(["--requests", "20"])
    printed = capsys.readouterr().out
    costs = [float(m) for m in re.findall(r": (-?\d+) us per request", printed)]
    plain, graphql, _ = costs
    assert plain > 0
    assert graphql > 0


def test_order_entry_benchmark_runs_with_parts_of_order_entry_switched_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    arguments = ["--seconds", "0.5", "--warmup", "0.1", "--clients", "2", "--json", str(tmp_path / "r.json")]
    bench.orders.main([*arguments, "--switch-off", "entry,ledger,risk"])
    printed = capsys.readouterr().out
    assert "switched off: entry, ledger, risk" in printed
    result = _report(tmp_path / "r.json")
    assert result["figures"]["orders"] > 0
    assert result["figures"]["failures"] == {}
    with pytest.raises(SystemExit):
        bench.orders.main([*arguments, "--switch-off", "ledger,matching"])
