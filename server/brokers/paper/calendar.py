"""Market hours for the paper exchange.

`always` (the default, for demos): open around the clock; a "day" ends at midnight in
New York, which is when day orders expire.
`nyse`: the regular session, 09:30-16:00 America/New_York on weekdays, closed on the NYSE
holidays and closing at 13:00 on the usual early-close days. Holidays follow the
exchange's rules, so every year is covered, not only a listed few.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from server.brokers.domain import NEW_YORK, MarketClock

REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
MAX_DAYS_AHEAD = 20


class MarketHoursMode(StrEnum):
    ALWAYS = "always"
    NYSE = "nyse"


class MarketCalendar(Protocol):
    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """The (open, close) of `day`'s session in UTC, or None when closed all day."""
        ...


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date | None:
    """Saturday holidays move to Friday, Sunday ones to Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=64)
def nyse_holidays(year: int) -> frozenset[date]:
    monday, thursday = 0, 3
    new_year = date(year, 1, 1)
    days = {
        # New Year's Day on a Saturday is not observed on the Friday before (NYSE rule 7.2).
        new_year + timedelta(days=1) if new_year.weekday() == 6 else new_year,
        _nth_weekday(year, 1, monday, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, monday, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, monday),  # Memorial Day
        _observed(date(year, 7, 4)),  # Independence Day
        _nth_weekday(year, 9, monday, 1),  # Labor Day
        _nth_weekday(year, 11, thursday, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),  # Christmas
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    return frozenset(d for d in days if d is not None and d.weekday() < 5 and d.year == year)


def nyse_early_closes(year: int) -> frozenset[date]:
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    candidates = {thanksgiving + timedelta(days=1), date(year, 12, 24)}
    if date(year, 7, 4).weekday() in {1, 2, 3, 4}:  # July 4th Tuesday-Friday: the 3rd closes early
        candidates.add(date(year, 7, 3))
    return frozenset(d for d in candidates if d.weekday() < 5 and d not in nyse_holidays(year))


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, NEW_YORK).astimezone(UTC)


class AlwaysOpenCalendar:
    def session(self, day: date) -> tuple[datetime, datetime] | None:
        return _at(day, time(0)), _at(day + timedelta(days=1), time(0))


class NyseCalendar:
    def session(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() >= 5 or day in nyse_holidays(day.year):
            return None
        close = EARLY_CLOSE if day in nyse_early_closes(day.year) else REGULAR_CLOSE
        return _at(day, REGULAR_OPEN), _at(day, close)


def make_calendar(mode: MarketHoursMode) -> MarketCalendar:
    return AlwaysOpenCalendar() if mode is MarketHoursMode.ALWAYS else NyseCalendar()


def sessions_from(calendar: MarketCalendar, moment: datetime) -> list[tuple[datetime, datetime]]:
    """Sessions that have not closed yet at `moment`, soonest first (a few weeks' worth)."""
    start = moment.astimezone(NEW_YORK).date() - timedelta(days=1)
    found = []
    for offset in range(MAX_DAYS_AHEAD):
        session = calendar.session(start + timedelta(days=offset))
        if session is not None and session[1] > moment:
            found.append(session)
    return found


def market_clock(calendar: MarketCalendar, moment: datetime) -> MarketClock:
    upcoming = sessions_from(calendar, moment)
    current = upcoming[0]
    open_now = current[0] <= moment < current[1]
    next_open = upcoming[1][0] if open_now else current[0]
    return MarketClock(timestamp=moment, is_open=open_now, next_open=next_open, next_close=current[1])


def session_close(calendar: MarketCalendar, moment: datetime) -> datetime:
    """When the session open at `moment` (or the next one) closes: day orders expire then."""
    return sessions_from(calendar, moment)[0][1]
