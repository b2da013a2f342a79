"""The device driver interface shared by robots and kiosks: types, limits, errors.

A driver is synchronous and pure apart from its injected clock: every call first brings the
device up to ``clock()``, so a test drives time by hand and the watchdog fires at an exact
instant, not at the next poll. ``DeviceRunner`` (runner.py) ticks a driver from asyncio.

Motion is commanded as velocities (m/s, rad/s) that hold until a deadline; a command that is
not renewed stops by itself after ``SafetyLimits.command_timeout_s`` (at most 10 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal, Protocol, runtime_checkable

from common.errors import BatonError

Clock = Callable[[], float]
"""Monotonic seconds. Injected everywhere; ``time.monotonic`` in production."""

MAX_COMMAND_TIMEOUT_S = 10.0


class DeviceError(BatonError):
    """A device command that cannot be carried out. ``reason`` is stable and goes on the wire."""

    reason = "device_error"


class MotionNotSupportedError(DeviceError):
    reason = "motion_not_supported"


class EmergencyStopError(DeviceError):
    reason = "emergency_stop"


class BatteryError(DeviceError):
    reason = "battery_low"


class DockError(DeviceError):
    reason = "dock"


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """Bounds applied to every command. Out-of-range speeds are clamped, never refused."""

    max_linear_mps: float = 0.5
    max_angular_rps: float = 1.0
    command_timeout_s: float = 2.0
    head_pan_rad: float = 1.5
    head_tilt_rad: float = 0.5
    head_rate_rps: float = 1.0
    min_battery_for_motion: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.command_timeout_s <= MAX_COMMAND_TIMEOUT_S:
            raise ValueError(
                f"command_timeout_s must be in (0, {MAX_COMMAND_TIMEOUT_S}] s, "
                f"got {self.command_timeout_s}"
            )
        if self.max_linear_mps < 0 or self.max_angular_rps < 0:
            raise ValueError("speed limits must be >= 0")


def clamp(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


@dataclass(frozen=True, slots=True)
class Pose:
    x: float = 0.0
    y: float = 0.0
    theta: float = 0.0


@dataclass(frozen=True, slots=True)
class PoseSample:
    t: float
    pose: Pose
    linear: float
    angular: float


@dataclass(frozen=True, slots=True)
class MotionGrant:
    """What a motion command actually got after the limits: clamped speeds, stop deadline."""

    linear: float
    angular: float
    until: float
    clamped: bool


@dataclass(frozen=True, slots=True)
class DisplayText:
    text: str
    lang: str | None
    at: float


@dataclass(frozen=True, slots=True)
class DeviceState:
    kind: Literal["robot", "kiosk"]
    at: float
    pose: Pose | None
    linear: float
    angular: float
    motion_until: float | None
    head_pan: float
    head_tilt: float
    estop: bool
    estop_reason: str | None
    battery: float | None  # 0..1; None on mains power
    charging: bool
    docked: bool | None  # None when the device has no dock
    display: DisplayText | None = None
    stops: int = 0  # motion stops by the watchdog since start

    def as_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class DeviceDriver(Protocol):
    kind: Literal["robot", "kiosk"]
    limits: SafetyLimits

    @property
    def can_move(self) -> bool: ...

    def move(self, linear: float, angular: float = 0.0,
             duration_s: float | None = None) -> MotionGrant: ...

    def turn(self, angular: float, duration_s: float | None = None) -> MotionGrant: ...

    def renew(self) -> MotionGrant: ...

    def head(self, pan: float, tilt: float) -> tuple[float, float]: ...

    def stop(self) -> None: ...

    def emergency_stop(self, reason: str = "operator") -> None: ...

    def reset_emergency_stop(self) -> None: ...

    def display_text(self, text: str, lang: str | None = None) -> None: ...

    def dock(self) -> None: ...

    def undock(self) -> None: ...

    def tick(self) -> DeviceState: ...

    def state(self) -> DeviceState: ...


@dataclass(slots=True)
class FakeClock:
    """A hand-driven clock for tests and simulations."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> float:
        self.now += dt
        return self.now


def monotonic() -> float:
    return time.monotonic()
