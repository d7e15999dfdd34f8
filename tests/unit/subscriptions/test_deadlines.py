import datetime

import pytest

from hub.subscriptions.deadlines import CHINA_TZ, WorkingCalendar


def ms(year: int, month: int, day: int, hour: int = 10) -> int:
    return int(datetime.datetime(year, month, day, hour, tzinfo=CHINA_TZ).timestamp() * 1000)


def end_of(year: int, month: int, day: int) -> int:
    return ms(year, month, day, 0) + 86_400_000


CAL = WorkingCalendar()


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (ms(2026, 6, 1), 2, end_of(2026, 6, 3)),  # Monday → Wednesday
        (ms(2026, 6, 4), 2, end_of(2026, 6, 8)),  # Thursday → Monday (weekend skipped)
        (ms(2026, 6, 5), 5, end_of(2026, 6, 12)),  # Friday → next Friday
        (ms(2026, 6, 6), 2, end_of(2026, 6, 9)),  # Saturday: Monday is day 1
        (ms(2026, 6, 1, 23), 2, end_of(2026, 6, 3)),  # late evening, same day
    ],
)
def test_working_days_skip_weekends(start: int, days: int, due: int) -> None:
    assert CAL.deadline_ms(start, days) == due


def test_holidays_and_make_up_working_days() -> None:
    # 2026 Dragon Boat Festival (19 June, a Friday) off; a Sunday made a working day.
    cal = WorkingCalendar(
        holidays=[datetime.date(2026, 6, 19)], workdays=[datetime.date(2026, 6, 21)]
    )
    assert cal.deadline_ms(ms(2026, 6, 18), 2) == end_of(2026, 6, 22)
    assert cal.deadline_ms(ms(2026, 6, 18), 1) == end_of(2026, 6, 21)
    assert not cal.is_working_day(datetime.date(2026, 6, 19))
    assert cal.is_working_day(datetime.date(2026, 6, 21))


def test_the_day_is_counted_in_china_time() -> None:
    # 2026-06-05 17:00 UTC is already Saturday in Beijing.
    start = int(datetime.datetime(2026, 6, 5, 17, tzinfo=datetime.UTC).timestamp() * 1000)
    assert CAL.deadline_ms(start, 1) == end_of(2026, 6, 8)
    with pytest.raises(ValueError):
        CAL.deadline_ms(start, 0)
