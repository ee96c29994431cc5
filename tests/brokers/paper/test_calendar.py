from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from server.brokers.paper.calendar import (
    AlwaysOpenCalendar,
    NyseCalendar,
    market_clock,
    nyse_early_closes,
    nyse_holidays,
    session_close,
)

# The NYSE's published holiday lists.
NYSE_2026 = {
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
}
NYSE_2027 = {
    date(2027, 1, 1),
    date(2027, 1, 18),
    date(2027, 2, 15),
    date(2027, 3, 26),
    date(2027, 5, 31),
    date(2027, 6, 18),
    date(2027, 7, 5),
    date(2027, 9, 6),
    date(2027, 11, 25),
    date(2027, 12, 24),
}


def test_holidays_match_the_published_lists() -> None:
    assert nyse_holidays(2026) == NYSE_2026
    assert nyse_holidays(2027) == NYSE_2027


def test_new_year_on_a_saturday_is_not_observed_on_friday() -> None:
    assert date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2022, 1, 1) not in nyse_holidays(2022)


def test_early_closes() -> None:
    assert nyse_early_closes(2026) == {date(2026, 11, 27), date(2026, 12, 24)}
    assert nyse_early_closes(2025) == {date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24)}
    session = NyseCalendar().session(date(2026, 11, 27))
    assert session is not None
    assert session[1] == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 13:00 in New York


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (datetime(2026, 11, 23, 14, 29, tzinfo=UTC), False),  # Monday 09:29 New York
        (datetime(2026, 11, 23, 14, 30, tzinfo=UTC), True),
        (datetime(2026, 11, 23, 20, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 23, 21, 0, tzinfo=UTC), False),
        (datetime(2026, 11, 26, 16, 0, tzinfo=UTC), False),  # Thanksgiving
        (datetime(2026, 11, 28, 16, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 7, 1, 13, 30, tzinfo=UTC), True),  # summer time: 09:30 EDT
    ],
)
def test_regular_session(moment: datetime, open_: bool) -> None:
    assert market_clock(NyseCalendar(), moment).is_open is open_


def test_clock_answers_like_alpaca() -> None:
    clock = market_clock(NyseCalendar(), datetime(2026, 11, 25, 22, tzinfo=UTC))  # Wednesday evening
    assert not clock.is_open
    assert clock.next_open == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)  # skips Thanksgiving
    assert clock.next_close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # early close
    during = market_clock(NyseCalendar(), datetime(2026, 11, 23, 15, tzinfo=UTC))
    assert during.is_open
    assert during.next_close == datetime(2026, 11, 23, 21, tzinfo=UTC)
    assert during.next_open == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def test_always_mode_days_end_at_midnight_in_new_york() -> None:
    moment = datetime(2026, 11, 23, 15, tzinfo=UTC)
    assert market_clock(AlwaysOpenCalendar(), moment).is_open
    assert session_close(AlwaysOpenCalendar(), moment) == datetime(2026, 11, 24, 5, tzinfo=UTC)
