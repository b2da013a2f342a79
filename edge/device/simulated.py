"""Simulated devices: a telepresence robot with honest kinematics, and a kiosk.

The robot is a unicycle (differential drive seen from its centre): velocity (v, w) held
between events is integrated exactly, x' = v cos(theta), y' = v sin(theta), theta' = w. Time
is cut into segments at every event (command deadline, battery reaching its floor), so a
watchdog stop happens at its deadline to the microsecond whatever the tick rate.

Energy: an idle draw plus a draw proportional to |v| and |w|; the dock charges. Numbers are
plausible for a small telepresence robot (~100 Wh pack, ~8 h idle) and live in ``RobotModel``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from edge.device.base import (
    BatteryError,
    Clock,
    DeviceState,
    DisplayText,
    DockError,
    EmergencyStopError,
    MotionGrant,
    MotionNotSupportedError,
    Pose,
    PoseSample,
    SafetyLimits,
    clamp,
    monotonic,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RobotModel:
    battery_wh: float = 100.0
    idle_w: float = 12.0
    w_per_mps: float = 60.0
    w_per_rps: float = 15.0
    charge_w: float = 80.0
    dock_pose: Pose = Pose()
    dock_radius_m: float = 0.3


class _DisplayMixin:
    _display: DisplayText | None
    _clock: Clock

    def display_text(self, text: str, lang: str | None = None) -> None:
        self._display = DisplayText(text=text[:2000], lang=lang, at=self._clock())


class SimulatedRobot(_DisplayMixin):
    kind: Literal["robot"] = "robot"

    def __init__(self, limits: SafetyLimits | None = None, model: RobotModel | None = None,
                 clock: Clock = monotonic, pose: Pose | None = None, battery: float = 1.0,
                 docked: bool = False, pose_log_size: int = 10_000):
        self.limits = limits or SafetyLimits()
        self.model = model or RobotModel()
        self._clock = clock
        self._t = clock()
        self._pose = pose or self.model.dock_pose
        self._v = 0.0
        self._w = 0.0
        self._until: float | None = None
        self._pan = self._tilt = 0.0
        self._pan_target = self._tilt_target = 0.0
        self._estop: str | None = None
        self._battery = battery
        self._docked = docked
        self._display: DisplayText | None = None
        self._stops = 0
        self.pose_log: deque[PoseSample] = deque(maxlen=pose_log_size)
        self._log_pose()

    # -- commands ---------------------------------------------------------------------------

    @property
    def can_move(self) -> bool:
        return True

    def move(self, linear: float, angular: float = 0.0,
             duration_s: float | None = None) -> MotionGrant:
        now = self._advance()
        if self._estop is not None:
            raise EmergencyStopError(f"emergency stop latched ({self._estop}); reset it first")
        if self._docked:
            raise DockError("robot is docked: undock before moving")
        if self._battery <= self.limits.min_battery_for_motion:
            raise BatteryError(f"battery at {self._battery:.0%}: dock to charge before moving")
        if not (math.isfinite(linear) and math.isfinite(angular)):
            raise ValueError("speeds must be finite numbers")
        v = clamp(linear, self.limits.max_linear_mps)
        w = clamp(angular, self.limits.max_angular_rps)
        hold = self.limits.command_timeout_s
        if duration_s is not None:
            if not duration_s > 0:
                raise ValueError("duration_s must be > 0")
            hold = min(hold, duration_s)
        self._v, self._w, self._until = v, w, now + hold
        self._log_pose()
        return MotionGrant(v, w, self._until, clamped=(v != linear or w != angular))

    def turn(self, angular: float, duration_s: float | None = None) -> MotionGrant:
        return self.move(0.0, angular, duration_s)

    def renew(self) -> MotionGrant:
        """Keep the current motion going for another timeout (a held joystick)."""
        now = self._advance()
        if self._until is None:
            return MotionGrant(0.0, 0.0, now, clamped=False)
        self._until = now + self.limits.command_timeout_s
        return MotionGrant(self._v, self._w, self._until, clamped=False)

    def head(self, pan: float, tilt: float) -> tuple[float, float]:
        self._advance()
        if self._estop is not None:
            raise EmergencyStopError(f"emergency stop latched ({self._estop}); reset it first")
        self._pan_target = clamp(pan, self.limits.head_pan_rad)
        self._tilt_target = clamp(tilt, self.limits.head_tilt_rad)
        return self._pan_target, self._tilt_target

    def stop(self) -> None:
        self._advance()
        self._halt("stop")

    def emergency_stop(self, reason: str = "operator") -> None:
        self._advance()
        self._estop = reason or "operator"
        self._halt("estop")
        self._pan_target, self._tilt_target = self._pan, self._tilt
        log.warning("device emergency stop", extra={"reason": self._estop})

    def reset_emergency_stop(self) -> None:
        self._advance()
        if self._estop is not None:
            log.info("device emergency stop reset", extra={"reason": self._estop})
        self._estop = None

    def dock(self) -> None:
        self._advance()
        d = math.dist((self._pose.x, self._pose.y),
                      (self.model.dock_pose.x, self.model.dock_pose.y))
        if d > self.model.dock_radius_m:
            raise DockError(f"dock is {d:.2f} m away (must be within "
                            f"{self.model.dock_radius_m} m): drive closer first")
        self._halt("dock")
        self._pose = self.model.dock_pose
        self._docked = True
        self._log_pose()

    def undock(self) -> None:
        self._advance()
        self._docked = False

    def tick(self) -> DeviceState:
        self._advance()
        return self.state()

    def state(self) -> DeviceState:
        now = self._advance()
        return DeviceState(
            kind="robot", at=now, pose=self._pose, linear=self._v, angular=self._w,
            motion_until=self._until, head_pan=self._pan, head_tilt=self._tilt,
            estop=self._estop is not None, estop_reason=self._estop, battery=self._battery,
            charging=self._docked and self._battery < 1.0, docked=self._docked,
            display=self._display, stops=self._stops,
        )

    @property
    def pose(self) -> Pose:
        self._advance()
        return self._pose

    # -- simulation -------------------------------------------------------------------------

    def _halt(self, why: str) -> None:
        if self._until is not None:
            self._v = self._w = 0.0
            self._until = None
            self._log_pose()
            log.info("device motion stopped", extra={"why": why})

    def _log_pose(self) -> None:
        self.pose_log.append(PoseSample(self._t, self._pose, self._v, self._w))

    def _power_w(self) -> float:
        m = self.model
        return m.idle_w + m.w_per_mps * abs(self._v) + m.w_per_rps * abs(self._w)

    def _advance(self) -> float:
        now = self._clock()
        while self._t < now:
            end, low = now, False
            moving = self._until is not None
            rate = self._power_w() / 3600.0 / self.model.battery_wh  # fraction per second
            if moving:
                end = min(end, self._until)
                low_at = self._t + (self._battery - self.limits.min_battery_for_motion) / rate
                if low_at <= end:
                    end, low = max(low_at, self._t), True
            dt = end - self._t
            self._integrate(dt)
            if self._docked:
                gain = (self.model.charge_w - self.model.idle_w) / 3600.0 / self.model.battery_wh
                self._battery = min(1.0, self._battery + gain * dt)
            else:
                self._battery = max(0.0, self._battery - rate * dt)
            self._t = end
            if low:
                self._halt("battery")
            elif moving and end >= self._until:
                self._stops += 1
                self._halt("timeout")
            elif moving:
                self._log_pose()
        return now

    def _integrate(self, dt: float) -> None:
        if dt <= 0:
            return
        p, v, w = self._pose, self._v, self._w
        if abs(w) < 1e-9:
            x = p.x + v * math.cos(p.theta) * dt
            y = p.y + v * math.sin(p.theta) * dt
        else:
            th1 = p.theta + w * dt
            x = p.x + v / w * (math.sin(th1) - math.sin(p.theta))
            y = p.y - v / w * (math.cos(th1) - math.cos(p.theta))
        theta = math.atan2(math.sin(p.theta + w * dt), math.cos(p.theta + w * dt))
        self._pose = Pose(x, y, theta)
        step = self.limits.head_rate_rps * dt
        self._pan += clamp(self._pan_target - self._pan, step)
        self._tilt += clamp(self._tilt_target - self._tilt, step)


class KioskDriver(_DisplayMixin):
    """A kiosk: a screen, no motors, mains power. Motion commands are a clear error."""

    kind: Literal["kiosk"] = "kiosk"

    def __init__(self, limits: SafetyLimits | None = None, clock: Clock = monotonic):
        self.limits = limits or SafetyLimits()
        self._clock = clock
        self._display: DisplayText | None = None
        self._estop: str | None = None

    @property
    def can_move(self) -> bool:
        return False

    def _refuse(self) -> MotionGrant:
        raise MotionNotSupportedError("this device is a kiosk: it has no motors to move")

    def move(self, linear: float, angular: float = 0.0,
             duration_s: float | None = None) -> MotionGrant:
        return self._refuse()

    def turn(self, angular: float, duration_s: float | None = None) -> MotionGrant:
        return self._refuse()

    def renew(self) -> MotionGrant:
        return self._refuse()

    def head(self, pan: float, tilt: float) -> tuple[float, float]:
        raise MotionNotSupportedError("this device is a kiosk: it has no head to turn")

    def stop(self) -> None:
        """Always safe to call: nothing moves."""

    def emergency_stop(self, reason: str = "operator") -> None:
        self._estop = reason or "operator"

    def reset_emergency_stop(self) -> None:
        self._estop = None

    def dock(self) -> None:
        raise MotionNotSupportedError("this device is a kiosk: it has no dock")

    def undock(self) -> None:
        raise MotionNotSupportedError("this device is a kiosk: it has no dock")

    def tick(self) -> DeviceState:
        return self.state()

    def state(self) -> DeviceState:
        return DeviceState(
            kind="kiosk", at=self._clock(), pose=None, linear=0.0, angular=0.0,
            motion_until=None, head_pan=0.0, head_tilt=0.0, estop=self._estop is not None,
            estop_reason=self._estop, battery=None, charging=False, docked=None,
            display=self._display,
        )
