"""Entities the assistant and the policy rules use, extracted with patterns.

Dates and times are read from the pivot text (the edge translated it); references and
identity numbers from both texts (they survive translation unchanged). Relative dates
("tomorrow", "next Tuesday") resolve against the injected clock in the site's timezone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_REFERENCE = re.compile(r"\b([A-Z]{2})-?(\d{4})\b", re.IGNORECASE)
_RESIDENCE_CARD = re.compile(r"\b[A-Z]{2}\d{8}[A-Z]{2}\b")
_MY_NUMBER = re.compile(r"(?<!\d)\d{4}[ -]?\d{4}[ -]?\d{4}(?!\d)")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})\b")
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|o'clock|h\b)"
                   r"|\b(\d{1,2}):(\d{2})\b", re.IGNORECASE)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY = re.compile(r"\b(next\s+)?(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_MONTH_DAY = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?\b",
                        re.IGNORECASE)
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(" + "|".join(_MONTHS) + r")\b",
                        re.IGNORECASE)


def extract(text: str, pivot_text: str, *, now: float, tz: str = "UTC") -> dict[str, str]:
    """Entities as strings: reference (AP-1234), residence_card, my_number, date (ISO),
    time (HH:MM). Only what is found is returned."""
    out: dict[str, str] = {}
    both = f"{text}\n{pivot_text}"
    m = _REFERENCE.search(both)
    if m:
        out["reference"] = f"{m.group(1).upper()}-{m.group(2)}"
    m = _RESIDENCE_CARD.search(both)
    if m:
        out["residence_card"] = m.group(0)
    m = _MY_NUMBER.search(both)
    if m:
        out["my_number"] = re.sub(r"\D", "", m.group(0))
    today = datetime.fromtimestamp(now, ZoneInfo(tz)).date()
    d = _date(pivot_text, today)
    if d is not None:
        out["date"] = d.isoformat()
    t = _time(pivot_text)
    if t is not None:
        out["time"] = t
    return out


def _date(text: str, today: date) -> date | None:
    low = text.lower()
    m = _ISO_DATE.search(text)
    if m:
        return _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for rx, month_group, day_group in ((_MONTH_DAY, 1, 2), (_DAY_MONTH, 2, 1)):
        m = rx.search(text)
        if m:
            month = _MONTHS.index(m.group(month_group).lower()) + 1
            d = _safe_date(today.year, month, int(m.group(day_group)))
            if d is not None and d < today:
                d = _safe_date(today.year + 1, month, int(m.group(day_group)))
            return d
    if "day after tomorrow" in low:
        return today + timedelta(days=2)
    if "tomorrow" in low:
        return today + timedelta(days=1)
    if re.search(r"\btoday\b", low):
        return today
    m = _WEEKDAY.search(text)
    if m:
        target = _WEEKDAYS.index(m.group(2).lower())
        # "Tuesday" and "next Tuesday" both mean the coming one, never today.
        return today + timedelta(days=(target - today.weekday()) % 7 or 7)
    m = _SLASH_DATE.search(text)
    if m:
        d = _safe_date(today.year, int(m.group(1)), int(m.group(2)))
        if d is not None and d < today:
            d = _safe_date(today.year + 1, int(m.group(1)), int(m.group(2)))
        return d
    return None


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _time(text: str) -> str | None:
    m = _TIME.search(text)
    if not m:
        return None
    if m.group(4) is not None:
        hh, mm, suffix = int(m.group(4)), int(m.group(5)), ""
    else:
        hh, mm, suffix = int(m.group(1)), int(m.group(2) or 0), m.group(3).lower()
    if suffix.startswith("p") and hh < 12:
        hh += 12
    if suffix.startswith("a") and hh == 12:
        hh = 0
    if not (0 <= hh <= 23 and 0 <= mm <= 59):
        return None
    return f"{hh:02d}:{mm:02d}"
