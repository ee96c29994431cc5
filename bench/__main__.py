"""Run every benchmark and write BENCHMARKS.md: `python -m bench [--quick] [--only NAME] [--output PATH]`.

Each benchmark runs as its own process (`python -m bench.NAME --json PATH`) with a time
limit, so one that fails or hangs costs its own section only (its process group is
stopped). The document is the machine and versions, the command to reproduce, then per
benchmark its command, its conditions, its tables and targets (judged by the benchmark from
its figures) and the prose kept in bench/notes/NAME.md. The whole run takes about four
minutes on two cores; `--quick` runs each benchmark briefly, to check the suite works.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from tempfile import TemporaryDirectory, mkdtemp

from bench.report import Report, Table, Target

REPOSITORY = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "notes"
DEFAULT_OUTPUT = REPOSITORY / "BENCHMARKS.md"
QUICK_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0  # after SIGTERM, before SIGKILL, for a timed-out benchmark's processes
OUTPUT_TAIL_LINES = 30  # of a failed benchmark's output, kept in its section
PACKAGES = (
    "strawberry-graphql",
    "graphql-core",
    "starlette",
    "uvicorn",
    "httptools",
    "uvloop",
    "websockets",
    "sqlalchemy",
    "sqlmodel",
    "aiosqlite",
    "httpx",
)


@dataclass(frozen=True)
class Benchmark:
    name: str  # for --only, and its notes: bench/notes/NAME.md
    title: str
    runs: tuple[tuple[str, ...], ...] = ((),)  # each run's arguments; the runs' tables are joined
    timeout_seconds: float = 180.0  # per run, at full length

    @property
    def module(self) -> str:
        return f"bench.{self.name}"

    def argv(self, arguments: Sequence[str], quick: bool) -> list[str]:
        """What follows `python` to run it: `-m bench.NAME`, then the run's arguments."""
        return ["-m", self.module, *arguments, *(["--quick"] if quick else [])]

    def command(self, arguments: Sequence[str], quick: bool) -> str:
        return " ".join(["python", *self.argv(arguments, quick)])


BENCHMARKS = (
    Benchmark("matching", "Paper exchange matching", timeout_seconds=300),
    Benchmark("quotes", "Quote path, in-process", timeout_seconds=120),
    Benchmark("http_quotes", "Quote queries over HTTP, against a plain Starlette route", timeout_seconds=240),
    Benchmark("quote_calls", "Quote calls per request", timeout_seconds=120),
    Benchmark("login", "Sign-ins beside quotes", timeout_seconds=120),
    Benchmark("orders", "Order entry through GraphQL", runs=((), ("--clients", "1")), timeout_seconds=150),
    Benchmark("fanout", "Subscription fan-out", timeout_seconds=300),
)


@dataclass
class Run:
    command: str
    seconds: float
    output: str
    report: Report | None = None
    failure: str | None = None  # why there is no report


@dataclass
class Outcome:
    benchmark: Benchmark
    runs: list[Run] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(run.failure for run in self.runs)


# ----- running ---------------------------------------------------------------------------------


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop a timed-out benchmark and the processes it started (its servers, its load): its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def run_one(benchmark: Benchmark, arguments: tuple[str, ...], quick: bool, timeout: float, scratch: Path) -> Run:
    result = Path(mkdtemp(dir=scratch)) / "result.json"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *benchmark.argv(arguments, quick), "--json", str(result)],
        cwd=REPOSITORY,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, stopped whole on a timeout
    )
    failure = None
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        output, _ = process.communicate(timeout=STOP_GRACE_SECONDS)
        failure = f"did not finish within {timeout:g} s (stopped)"
    except BaseException:  # Ctrl-C reaches only this process group, not the benchmark's
        _stop_group(process)
        raise
    seconds = time.perf_counter() - started
    report = None
    if failure is None and process.returncode != 0:
        failure = f"exited with status {process.returncode}"
    elif failure is None:
        try:
            report = Report.load(result)
        except (OSError, ValueError, KeyError, TypeError) as error:
            failure = f"left no readable result ({type(error).__name__})"
    return Run(benchmark.command(arguments, quick), seconds, output, report, failure)


def run_all(benchmarks: Sequence[Benchmark], quick: bool) -> list[Outcome]:
    outcomes = []
    with TemporaryDirectory() as scratch:
        for benchmark in benchmarks:
            outcome = Outcome(benchmark)
            for arguments in benchmark.runs:
                timeout = QUICK_TIMEOUT_SECONDS if quick else benchmark.timeout_seconds
                print(f"== {benchmark.command(arguments, quick)}", flush=True)
                run = run_one(benchmark, arguments, quick, timeout, Path(scratch))
                print(run.output.rstrip())
                print(f"== {run.failure or 'done'} ({run.seconds:.0f} s)\n", flush=True)
                outcome.runs.append(run)
            outcomes.append(outcome)
    return outcomes


# ----- writing ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB memory"
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The commit measured, and whether the checkout had changes (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPOSITORY, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if status.stdout.strip() else "")


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on; taken before the run, so the load average shows how quiet it was."""

    cpu: str
    cores: int
    arch: str
    memory: str
    load: tuple[float, float, float]
    python: str
    packages: dict[str, str]
    commit: str
    started: datetime

    @classmethod
    def now(cls) -> Machine:
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            arch=platform.machine(),
            memory=_memory(),
            load=os.getloadavg(),
            python=f"{platform.python_version()} ({platform.python_implementation()})",
            packages={package: _version(package) for package in PACKAGES},
            commit=_commit(),
            started=datetime.now(UTC),
        )


def _header(machine: Machine, quick: bool, only: bool, seconds: float) -> list[str]:
    command = "python -m bench" + (" --quick" if quick else "")
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by `python -m bench`: edit the benchmarks (bench/*.py) and their prose (bench/notes/*.md). -->",
        "",
    ]
    if quick:
        lines += ["**A quick run** (`--quick`): each benchmark ran briefly to check that it works; not figures.", ""]
    if only:
        lines += ["**A partial run** (`--only`): the other benchmarks are not in this file.", ""]
    loads = " / ".join(f"{load:.2f}" for load in machine.load)
    return [
        *lines,
        f"- **Machine**: {machine.cpu}, {machine.cores} cores, {machine.arch}{machine.memory}; "
        f"load average before the run {loads} (1, 5, 15 min)",
        f"- **Python** {machine.python}; "
        + ", ".join(f"{name} {version}" for name, version in machine.packages.items()),
        f"- **Commit** {machine.commit}; **date** {machine.started:%Y-%m-%d %H:%M} UTC; "
        f"the run took {seconds / 60:.1f} min",
        f"- **Reproduce**: `pip install -e '.[test]'`, then `{command}` (it writes this file)",
        "",
    ]


def _targets(outcomes: Sequence[Outcome]) -> list[str]:
    table = Table(["benchmark", "target", "result", "measured"], "llll")
    for outcome in outcomes:
        for run in outcome.runs:
            if run.failure:
                table.add(outcome.benchmark.title, "", "**did not run**", run.failure)
            for target in run.report.targets if run.report else []:
                table.add(outcome.benchmark.title, target.what, target.verdict(markdown=True), target.measured)
    return ["## Targets", "", *table.markdown(), ""]


def _joined_tables(reports: Sequence[Report]) -> list[Table]:
    """The runs' tables, rows of same-shaped tables joined (the first run's order)."""
    tables: list[Table] = []
    for report in reports:
        for table in report.tables:
            same = next((t for t in tables if t.columns == table.columns and t.align == table.align), None)
            if same is None:
                tables.append(Table(list(table.columns), table.align, [list(row) for row in table.rows]))
            else:
                same.rows += table.rows
    return tables


def _target_line(target: Target) -> str:
    return f"- target, {target.what}: {target.verdict(markdown=True)} ({target.measured})"


def _section(outcome: Outcome) -> list[str]:
    benchmark = outcome.benchmark
    commands = " and ".join(f"`{run.command}`" for run in outcome.runs)
    lines = [f"## {benchmark.title}", "", f"Command: {commands} ({sum(r.seconds for r in outcome.runs):.0f} s).", ""]
    done = [(run.command, run.report) for run in outcome.runs if run.report is not None]
    setups = list(dict.fromkeys(report.setup for _, report in done))
    if len(setups) == 1:
        lines += [f"Setup: {setups[0]}.", ""]
    else:
        lines += [f"- Setup of `{command}`: {report.setup}." for command, report in done] + [""]
    for table in _joined_tables([report for _, report in done]):
        lines += [*table.markdown(), ""]
    bullets = []
    for command, report in done:
        prefix = f"`{command}`: " if len(done) > 1 else ""
        bullets += [f"- {prefix}{line}" for line in report.lines]
        bullets += [_target_line(target) for target in report.targets]
    if bullets:
        lines += [*bullets, ""]
    for run in outcome.runs:
        if run.failure:
            tail = run.output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:]
            lines += [f"**`{run.command}` {run.failure}**; the end of its output:", "", "```", *tail, "```", ""]
    notes = NOTES / f"{benchmark.name}.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    return lines


def document(outcomes: Sequence[Outcome], machine: Machine, quick: bool, only: bool, seconds: float) -> str:
    lines = _header(machine, quick, only, seconds)
    intro = NOTES / "intro.md"
    if intro.exists():
        lines += [intro.read_text().strip(), ""]
    lines += _targets(outcomes)
    for outcome in outcomes:
        lines += _section(outcome)
    return "\n".join(lines).rstrip() + "\n"


# ----- the command -----------------------------------------------------------------------------


def _selected(parser: argparse.ArgumentParser, only: list[str] | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    names = [name.strip() for value in only for name in value.split(",") if name.strip()]
    known = {benchmark.name for benchmark in BENCHMARKS}
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return [benchmark for benchmark in BENCHMARKS if benchmark.name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeat, or comma-separate): {', '.join(b.name for b in BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="run each benchmark briefly, to check the suite works")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write (default: {DEFAULT_OUTPUT.name}; a --quick or --only run must name a file)",
    )
    args = parser.parse_args(argv)
    benchmarks = _selected(parser, args.only)
    partial = len(benchmarks) < len(BENCHMARKS)
    if args.output is None and (args.quick or partial):
        parser.error("a --quick or --only run does not overwrite BENCHMARKS.md: give --output PATH")
    output: Path = args.output or DEFAULT_OUTPUT
    machine = Machine.now()
    started = time.perf_counter()
    outcomes = run_all(benchmarks, args.quick)
    text = document(outcomes, machine, args.quick, partial, time.perf_counter() - started)
    partial_file = output.with_name(output.name + ".partial")
    partial_file.write_text(text)
    partial_file.replace(output)
    failed = [outcome.benchmark.name for outcome in outcomes if outcome.failed]
    print(f"wrote {output}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
