"""Small measuring helpers shared by the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from tests.utils.processes import clean_environment

UNLIMITED = str(10**9)


def bench_environment(**extra: str) -> dict[str, str]:
    """A benchmark server's environment: the market always open, no rate limit in the way, the cheapest
    argon2id (sign-ups are not what is measured) and day-long tokens (long runs keep theirs); `extra` is
    added, or overrides."""
    settings = {
        "MARKET_HOURS": "always",
        "RATE_LIMIT_USER_PER_MINUTE": UNLIMITED,
        "RATE_LIMIT_ORDERS_PER_MINUTE": UNLIMITED,
        "RATE_LIMIT_ANONYMOUS_PER_MINUTE": UNLIMITED,
        "LOGIN_ATTEMPTS_PER_IP": UNLIMITED,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "ACCESS_TOKEN_MINUTES": str(24 * 60),
    }
    return clean_environment(**(settings | extra))


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0.5: the median) of the sorted values, nearest rank; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process (user + system), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")
