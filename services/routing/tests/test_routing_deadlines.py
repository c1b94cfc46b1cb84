"""Deadlines: working days skip weekends, Vietnamese public holidays (Tết too), extra days off."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from phoihop_common.config import Duration, load_reference
from phoihop_routing import deadlines
from phoihop_routing.deadlines import VN_TZ, WorkCalendar, after, before, end_of_day
from phoihop_routing.escalation import Ladder, Superiors

CAL = WorkCalendar()


def at(y: int, m: int, d: int, hh: int = 9) -> datetime:
    return datetime(y, m, d, hh, 0, tzinfo=VN_TZ)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2027, 2, 3), True),  # Wednesday before Tết
        (date(2027, 2, 4), False),  # 29 Tết
        (date(2027, 2, 6), False),  # mùng 1 Tết (Saturday anyway)
        (date(2027, 2, 8), False),  # mùng 3
        (date(2027, 2, 10), False),  # mùng 5
        (date(2027, 2, 11), True),
        (date(2027, 4, 30), False),  # Reunification Day
        (date(2027, 5, 1), False),  # Labour Day
        (date(2027, 9, 2), False),  # National Day
        (date(2027, 9, 3), False),
        (date(2027, 3, 6), False),  # Saturday
        (date(2027, 3, 7), False),  # Sunday
        (date(2027, 3, 8), True),
    ],
)
def test_working_days_of_2027(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_five_working_days_across_tet_2027() -> None:
    # Wed 3 Feb + 5 working days: 4-10 Feb are Tết, 6-7 a weekend -> 11, 12, 15, 16, 17 Feb
    assert CAL.add_working_days(date(2027, 2, 3), 5) == date(2027, 2, 17)
    deadline = after(at(2027, 2, 3), Duration(working_days=5), calendar=CAL)
    assert deadline == end_of_day(date(2027, 2, 17))
    assert deadline.utcoffset() == timedelta(hours=7)


def test_working_days_skip_30_4_and_1_5_and_weekend() -> None:
    # Thu 29 Apr 2027 + 2: 30/4 (Fri), 1/5 (Sat), 2/5 (Sun), 3/5 (Labour Day observed)
    assert CAL.add_working_days(date(2027, 4, 29), 2) == date(2027, 5, 5)


def test_working_days_skip_national_day() -> None:
    # Wed 1 Sep 2027 + 1: 2/9 and 3/9 are National Day, then the weekend
    assert CAL.add_working_days(date(2027, 9, 1), 1) == date(2027, 9, 6)


def test_extra_days_off_are_skipped() -> None:
    cal = WorkCalendar(extra_days_off=["2027-03-09", date(2027, 3, 10)])
    assert not cal.is_working_day(date(2027, 3, 9))
    assert cal.holiday_name(date(2027, 3, 9)) == "extra day off"
    # Mon 8 Mar + 3 working days: 9 and 10 are days off -> 11, 12, 15
    assert cal.add_working_days(date(2027, 3, 8), 3) == date(2027, 3, 15)
    assert CAL.add_working_days(date(2027, 3, 8), 3) == date(2027, 3, 11)


def test_remembered_working_days_match_a_walk_of_the_calendar() -> None:
    """The memo gives what counting day by day gives, also once it was cleared when full."""
    cal = WorkCalendar(extra_days_off=["2027-06-01"])
    fresh = WorkCalendar(extra_days_off=["2027-06-01"])
    start = date(2026, 12, 20)
    # 900 days x 5 limits = 4,500 keys, more than the memo holds: it fills and is cleared
    days = [start + timedelta(days=i) for i in range(900)]
    for rounds in range(2):  # the second round reads the memo
        for day in days:
            for n in (0, 1, 5, 10, 30):
                expected = day
                remaining = n
                while remaining:
                    expected += timedelta(days=1)
                    remaining -= fresh.is_working_day(expected)
                assert cal.add_working_days(day, n) == expected, (rounds, day, n)
    assert len(cal._added) <= deadlines._MEMO_SIZE < 900 * 5


def test_calendar_days_ignore_holidays() -> None:
    deadline = after(at(2027, 2, 3), Duration(days=10), calendar=CAL)
    assert deadline == end_of_day(date(2027, 2, 13))


def test_days_count_in_vietnam_local_time() -> None:
    # 20:00 UTC on 1 Mar is already 2 Mar in Vietnam
    start = datetime(2027, 3, 1, 20, 0, tzinfo=UTC)
    assert after(start, Duration(days=1), calendar=CAL) == end_of_day(date(2027, 3, 3))


def test_seconds_unit_for_demos() -> None:
    start = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    assert after(start, Duration(seconds=5), calendar=CAL) == start + timedelta(seconds=5)
    assert before(start, Duration(seconds=2), calendar=CAL) == start - timedelta(seconds=2)


def test_reminder_is_working_days_before_the_deadline() -> None:
    deadline = end_of_day(date(2027, 2, 17))  # Wednesday after Tết
    # 3 working days before Wed 17 Feb: 16, 15, 12 -> the reminder fires at end of Fri 12
    assert before(deadline, Duration(working_days=3), calendar=CAL) == end_of_day(date(2027, 2, 12))


def test_ladder_from_the_shipped_policy() -> None:
    reference = load_reference()
    ladder = Ladder.from_policies(
        reference.sla, calendar=CAL, superiors=Superiors.from_reference(reference)
    )
    deadline = end_of_day(date(2027, 1, 29))
    first, second = ladder.levels
    assert ladder.level_at(first, deadline) == deadline
    # 10 working days after Fri 29 Jan 2027: 1-3 Feb, Tết (4-10 Feb) skipped, 11-19 Feb
    assert ladder.level_at(second, deadline) == end_of_day(date(2027, 2, 19))
    assert ladder.recipients(first, assigned="SO_XAY_DUNG") == (
        "UBND_TINH",
        "TT_HDND",
        "UBMTTQ_TINH",
    )
    commune = "UBND_XA_XA_AN_BINH"
    assert ladder.recipients(first, assigned=commune)[0] == "UBND_TINH"
    # the provincial committee and the supervisors have no superior in the province
    assert ladder.recipients(first, assigned="UBND_TINH") == ("TT_HDND", "UBMTTQ_TINH")
    assert ladder.recipients(second, assigned="SO_Y_TE") == ("UBND_TINH", "DOAN_DBQH")


def test_superior_overrides() -> None:
    reference = load_reference()
    sup = Superiors.from_reference(reference, overrides={"CONG_AN_TINH": "THANH_TRA_TINH"})
    assert sup.of("CONG_AN_TINH") == "THANH_TRA_TINH"
    assert sup.of("SO_GD_DT") == "UBND_TINH"
    assert sup.of("TT_HDND") is None
