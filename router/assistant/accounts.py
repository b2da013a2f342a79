"""The account service the assistant's tools call: appointments and balances.

``AccountService`` is the Protocol; ``InMemoryAccountService`` is the demo implementation
(seeded with a few residents). A store-backed implementation satisfies the same Protocol.
Times are timezone-aware datetimes; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from common.errors import BatonError

AccountErrorCode = Literal["not_found", "slot_taken", "in_the_past", "outside_hours",
                           "unavailable"]


class AccountError(BatonError):
    reason = "account_error"

    def __init__(self, reason: AccountErrorCode, message: str):
        super().__init__(message, reason=reason)


class Appointment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: str
    resident: str
    service: str
    start: datetime
    counter: str


class Balance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resident: str
    due: int            # amount due this period, in yen
    overdue: int        # amount past due, in yen
    next_due_date: date


class AccountService(Protocol):
    async def appointments(self, *, resident: str | None = None,
                           reference: str | None = None) -> list[Appointment]:
        """Upcoming appointments of a resident, or the one with ``reference``."""
        ...

    async def reschedule(self, reference: str, start: datetime) -> Appointment:
        """Move an appointment. Raises AccountError (not_found, slot_taken, in_the_past,
        outside_hours)."""
        ...

    async def balance(self, resident: str) -> Balance | None: ...


class InMemoryAccountService:
    """Demo accounts. Opening hours: weekdays, slots of ``slot_minutes`` from 9:00 to 16:30
    local time."""

    def __init__(self, *, now: Callable[[], float], tz: str = "Asia/Tokyo",
                 appointments: list[Appointment] | None = None,
                 balances: list[Balance] | None = None, slot_minutes: int = 30):
        self._now = now
        self.tz = ZoneInfo(tz)
        self.slot_minutes = slot_minutes
        self._appointments = {a.reference: a for a in appointments or ()}
        self._balances = {b.resident: b for b in balances or ()}

    @classmethod
    def demo(cls, *, now: Callable[[], float], tz: str = "Asia/Tokyo") -> InMemoryAccountService:
        """A few residents, with appointments on the next weekdays from ``now``."""
        zone = ZoneInfo(tz)
        today = datetime.fromtimestamp(now(), zone).date()
        days = [d for d in (today + timedelta(days=i) for i in range(1, 15)) if d.weekday() < 5]

        def at(day: date, hh: int, mm: int = 0) -> datetime:
            return datetime.combine(day, time(hh, mm), zone)

        appts = [
            Appointment(reference="AP-1001", resident="res-1", service="resident registration",
                        start=at(days[0], 10), counter="Counter 3, 1st floor"),
            Appointment(reference="AP-1002", resident="res-2", service="childcare application",
                        start=at(days[1], 14, 30), counter="Counter 12, 2nd floor"),
            Appointment(reference="AP-1003", resident="res-3", service="tax consultation",
                        start=at(days[2], 11), counter="Counter 8, 2nd floor"),
            Appointment(reference="AP-1004", resident="res-4", service="my number card pickup",
                        start=at(days[0], 15), counter="Counter 5, 1st floor"),
        ]
        balances = [
            Balance(resident="res-1", due=12400, overdue=0, next_due_date=days[5]),
            Balance(resident="res-3", due=38000, overdue=76000, next_due_date=days[3]),
            Balance(resident="res-5", due=9100, overdue=18200, next_due_date=days[4]),
        ]
        return cls(now=now, tz=tz, appointments=appts, balances=balances)

    async def appointments(self, *, resident: str | None = None,
                           reference: str | None = None) -> list[Appointment]:
        now = datetime.fromtimestamp(self._now(), self.tz)
        if reference is not None:
            a = self._appointments.get(reference.upper())
            found = [a] if a is not None else []
        else:
            found = [a for a in self._appointments.values() if a.resident == resident]
        return sorted((a for a in found if a.start >= now), key=lambda a: a.start)

    async def reschedule(self, reference: str, start: datetime) -> Appointment:
        current = self._appointments.get(reference.upper())
        if current is None:
            raise AccountError("not_found", f"no appointment {reference}")
        if start.tzinfo is None:
            start = start.replace(tzinfo=self.tz)
        local = start.astimezone(self.tz)
        if local <= datetime.fromtimestamp(self._now(), self.tz):
            raise AccountError("in_the_past", "the new time is in the past")
        minutes = local.hour * 60 + local.minute
        if local.weekday() >= 5 or not 9 * 60 <= minutes <= 16 * 60 + 30 \
                or minutes % self.slot_minutes or local.second:
            raise AccountError("outside_hours", "appointments are on weekdays, 9:00 to 16:30, "
                               f"every {self.slot_minutes} minutes")
        if any(a.start == local and a.reference != current.reference
               and a.counter == current.counter for a in self._appointments.values()):
            raise AccountError("slot_taken", "that time is already booked")
        moved = current.model_copy(update={"start": local})
        self._appointments[moved.reference] = moved
        return moved

    async def balance(self, resident: str) -> Balance | None:
        return self._balances.get(resident)
