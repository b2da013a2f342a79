"""Device drivers for robots and kiosks: motion within safety limits, head, display, battery.

See docs/telepresence.md. ``make_driver("robot" | "kiosk")`` gives the simulated drivers; a
real robot is another class satisfying ``DeviceDriver``.
"""

from __future__ import annotations

from edge.device.base import (
    MAX_COMMAND_TIMEOUT_S,
    BatteryError,
    Clock,
    DeviceDriver,
    DeviceError,
    DeviceState,
    DockError,
    EmergencyStopError,
    FakeClock,
    MotionGrant,
    MotionNotSupportedError,
    Pose,
    PoseSample,
    SafetyLimits,
)
from edge.device.commands import CommandResult, DeviceCommand, apply_command, parse_command
from edge.device.runner import DeviceRunner, EstopChange
from edge.device.simulated import KioskDriver, RobotModel, SimulatedRobot

__all__ = [
    "MAX_COMMAND_TIMEOUT_S", "BatteryError", "Clock", "CommandResult", "DeviceCommand",
    "DeviceDriver", "DeviceError", "DeviceRunner", "DeviceState", "DockError",
    "EmergencyStopError", "EstopChange", "FakeClock", "KioskDriver", "MotionGrant", "MotionNotSupportedError",
    "Pose", "PoseSample", "RobotModel", "SafetyLimits", "SimulatedRobot", "apply_command",
    "make_driver", "parse_command",
]


def make_driver(kind: str, limits: SafetyLimits | None = None, **kw) -> DeviceDriver:
    if kind == "robot":
        return SimulatedRobot(limits=limits, **kw)
    if kind == "kiosk":
        return KioskDriver(limits=limits, **kw)
    raise ValueError(f"unknown device kind {kind!r}: use 'robot' or 'kiosk'")
