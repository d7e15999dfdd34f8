"""Deadlines in working days (工作日).

A request received on some day has ``n`` working days: the deadline is the end (24:00,
China Standard Time) of the ``n``-th working day after the day of receipt. Weekends are
not working days unless listed as make-up working days (调休上班); listed public holidays
are not working days.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8), "CST")

COMPLIANCE_CHECK_DAYS = 2
OWNER_ANSWER_DAYS = 5


class WorkingCalendar:
    def __init__(
        self,
        holidays: Iterable[datetime.date] = (),
        workdays: Iterable[datetime.date] = (),
        tz: datetime.tzinfo = CHINA_TZ,
    ) -> None:
        self.holidays = frozenset(holidays)
        self.workdays = frozenset(workdays)  # weekend days that are working days
        self.tz = tz

    def is_working_day(self, day: datetime.date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def day_of(self, at_ms: int) -> datetime.date:
        return datetime.datetime.fromtimestamp(at_ms / 1000, self.tz).date()

    def deadline_ms(self, start_ms: int, working_days: int) -> int:
        """End of the ``working_days``-th working day after the day of ``start_ms``."""
        if working_days < 1:
            raise ValueError("a deadline needs at least one working day")
        day = self.day_of(start_ms)
        counted = 0
        while counted < working_days:
            day += datetime.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        end = datetime.datetime.combine(
            day + datetime.timedelta(days=1), datetime.time(), tzinfo=self.tz
        )
        return int(end.timestamp() * 1000)


WEEKENDS_ONLY = WorkingCalendar()
