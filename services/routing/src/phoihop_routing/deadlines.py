"""Legal time limits as instants: calendar days, working days, and `seconds` for demos.

Pure functions, no I/O. Days are counted in Vietnam's local time (UTC+7, no daylight
saving), so a limit of N (working) days ends at the end of a local day:

- `days: N`          ends at 23:59:59 of the local date N days after the start date;
- `working_days: N`  ends at 23:59:59 of the N-th working day after the start date. A working
  day is Monday to Friday that is neither a Vietnamese public holiday (the `holidays`
  package: Tết Nguyên đán by the lunar calendar, Giỗ Tổ Hùng Vương, 30/4, 1/5, 2/9 and the
  days it knows the government adds) nor a configured extra day off
  (`sla_policies.yaml: extra_days_off: [YYYY-MM-DD, ...]`);
- `seconds: N`       is exactly N seconds after the start (demos and tests).

`before` and `after` move an instant by a duration in the same units; reminders are
`before(deadline, remind_before)`, escalation levels `after(deadline, level.after)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone

import holidays

from phoihop_common.config import Duration

VN_TZ = timezone(timedelta(hours=7), "ICT")
END_OF_DAY = time(23, 59, 59, tzinfo=VN_TZ)
_MEMO_SIZE = 4096


class WorkCalendar:
    """Working days of Vietnam: weekends, public holidays and extra days off are not."""

    def __init__(self, *, extra_days_off: Iterable[date | str] = ()) -> None:
        self._public = holidays.country_holidays("VN")
        self._extra = frozenset(
            d if isinstance(d, date) else date.fromisoformat(d) for d in extra_days_off
        )
        # every case of a day asks for the same few limits: walk the calendar once each
        self._added: dict[tuple[date, int], date] = {}

    def is_working_day(self, day: date) -> bool:
        """True for Monday-Friday that is no public holiday nor extra day off."""
        return day.weekday() < 5 and day not in self._public and day not in self._extra

    def holiday_name(self, day: date) -> str | None:
        """Name of the public holiday or `extra day off`, None on an ordinary day."""
        if day in self._extra:
            return "extra day off"
        name = self._public.get(day)
        return str(name) if name else None

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (`day` itself when n == 0)."""
        key = (day, n)
        found = self._added.get(key)
        if found is None:
            if len(self._added) >= _MEMO_SIZE:
                self._added.clear()
            found = self._added[key] = self._add_working_days(day, n)
        return found

    def _add_working_days(self, day: date, n: int) -> date:
        current = day
        remaining = n
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def subtract_working_days(self, day: date, n: int) -> date:
        """The n-th working day before `day` (`day` itself when n == 0)."""
        current = day
        remaining = n
        while remaining > 0:
            current -= timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current


def local(moment: datetime) -> datetime:
    """The instant in Vietnam's local time (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VN_TZ)


def end_of_day(day: date) -> datetime:
    """23:59:59 local time of `day`."""
    return datetime.combine(day, END_OF_DAY)


def after(moment: datetime, duration: Duration, *, calendar: WorkCalendar) -> datetime:
    """The instant a time limit of `duration` counted from `moment` runs out."""
    start = local(moment)
    if duration.seconds is not None:
        return start + timedelta(seconds=duration.seconds)
    if duration.working_days is not None:
        return end_of_day(calendar.add_working_days(start.date(), duration.working_days))
    assert duration.days is not None
    if duration.days == 0:
        return start
    return end_of_day(start.date() + timedelta(days=duration.days))


def before(moment: datetime, duration: Duration, *, calendar: WorkCalendar) -> datetime:
    """`moment` moved back by `duration` (same local time of day for day units)."""
    end = local(moment)
    if duration.seconds is not None:
        return end - timedelta(seconds=duration.seconds)
    if duration.working_days is not None:
        day = calendar.subtract_working_days(end.date(), duration.working_days)
        return datetime.combine(day, end.timetz())
    assert duration.days is not None
    return end - timedelta(days=duration.days)


def extension_duration(answer: Duration) -> Duration:
    """The duration one extension adds (`extension_days` calendar days of the answer limit)."""
    return Duration(days=answer.extension_days or 0)
