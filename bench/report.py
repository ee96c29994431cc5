"""What a benchmark measured: printed for people, saved as JSON (`--json PATH`) for `python -m bench`.

Every benchmark builds one Report from its measurements. Its tables and lines are the
figures, already formatted; its targets say what the issue asked for and whether the
figures meet it (computed here, never written by hand); `figures` holds the raw numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    columns: list[str]
    align: str  # one letter per column: "l" (text) or "r" (figures)
    rows: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.align) != len(self.columns) or set(self.align) - {"l", "r"}:
            raise ValueError(f"align needs one 'l' or 'r' per column: {self.columns}")

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> list[str]:
        rule = "".join("---|" if letter == "l" else "---:|" for letter in self.align)
        return [
            "| " + " | ".join(self.columns) + " |",
            "|" + rule,
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]


@dataclass
class Target:
    what: str  # the target, e.g. "at least 500 orders/s"
    met: bool
    measured: str  # the figure it was judged on, e.g. "55 orders/s"

    def verdict(self, markdown: bool = False) -> str:
        """'met', or 'NOT met' ('**not met**' in Markdown)."""
        if self.met:
            return "met"
        return "**not met**" if markdown else "NOT met"

    def line(self) -> str:
        return f"target: {self.what}: {self.verdict()} ({self.measured})"


@dataclass
class Report:
    setup: str  # the conditions of the run, one line (the machine is added when printed)
    tables: list[Table] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # further figures, one sentence each
    targets: list[Target] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # the raw numbers, for machines

    def print(self) -> None:
        print(f"{machine()}; {self.setup}")
        for table in self.tables:
            print()
            print("\n".join(table.markdown()))
        if self.lines or self.targets:
            print()
        for line in self.lines:
            print(line)
        for target in self.targets:
            print(target.line())

    def save(self, path: Path | None) -> None:
        if path is not None:
            path.write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n")

    def publish(self, path: Path | None) -> None:
        self.print()
        self.save(path)

    @classmethod
    def load(cls, path: Path) -> Report:
        data = json.loads(path.read_text())
        return cls(
            setup=data["setup"],
            tables=[Table(**table) for table in data["tables"]],
            lines=data["lines"],
            targets=[Target(**target) for target in data["targets"]],
            figures=data["figures"],
        )


def machine() -> str:
    return f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"


def add_common_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """`--json PATH` and `--quick` (`quick` says what a quick run shortens), for every benchmark."""
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--quick", action="store_true", help=f"a short run to check that it works: {quick}")


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, quick: Mapping[str, float]
) -> argparse.Namespace:
    """The arguments, with `quick`'s values (by argument name) in place when --quick is given."""
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args
