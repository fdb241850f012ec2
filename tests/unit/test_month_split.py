"""month_split: whole months and the days around them cover a period exactly once."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from llmtally.analytics.service import month_split

DAYS = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2027, 12, 31))


def _covered(split: dict[str, dt.date], day: dt.date) -> int:
    """How many of the three ranges count ``day``."""
    month = day.replace(day=1)
    return sum(
        [
            split["m_from"] <= month < split["m_until"],
            split["d1_from"] <= day < split["d1_until"],
            split["d2_from"] <= day < split["d2_until"],
        ]
    )


@given(since=st.none() | DAYS, until=st.none() | DAYS, today=DAYS)
def test_every_day_up_to_today_is_counted_once_inside_the_period_and_never_outside(
    since: dt.date | None, until: dt.date | None, today: dt.date
) -> None:
    if since is not None and until is not None and until <= since:
        return
    split = month_split(since, until, today)
    first = since or dt.date(2023, 12, 1)
    for offset in range(0, 1500, 3):
        day = dt.date(2023, 12, 1) + dt.timedelta(days=offset)
        if day > today:  # no row is stamped after today: a whole current month may be read
            break
        inside = day >= first and (until is None or day < until)
        assert _covered(split, day) == (1 if inside else 0), (since, until, today, day, split)


def test_this_month_so_far_is_one_whole_month() -> None:
    today = dt.date(2026, 11, 25)
    split = month_split(dt.date(2026, 11, 1), dt.date(2026, 11, 26), today)
    assert (split["m_from"], split["d1_from"] < split["d1_until"]) == (dt.date(2026, 11, 1), False)
    assert split["m_until"] > dt.date(2026, 11, 30)
