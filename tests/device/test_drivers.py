"""Device drivers: limits, the renewal watchdog, e-stop, kiosk, battery and dock.

Time is a FakeClock driven by hand: the watchdog is checked at exact instants, no sleeps.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from edge.device import (
    DeviceDriver,
    DeviceRunner,
    DockError,
    EmergencyStopError,
    FakeClock,
    KioskDriver,
    MotionNotSupportedError,
    Pose,
    RobotModel,
    SafetyLimits,
    SimulatedRobot,
    apply_command,
)
from edge.device.base import BatteryError

LIMITS = SafetyLimits(max_linear_mps=0.5, max_angular_rps=1.0, command_timeout_s=2.0)


def robot(clock: FakeClock, **kw) -> SimulatedRobot:
    return SimulatedRobot(limits=kw.pop("limits", LIMITS), clock=clock, **kw)


def test_drivers_satisfy_the_protocol():
    clock = FakeClock()
    assert isinstance(robot(clock), DeviceDriver)
    assert isinstance(KioskDriver(clock=clock), DeviceDriver)


def test_limits_reject_a_timeout_beyond_ten_seconds():
    with pytest.raises(ValueError, match="command_timeout_s"):
        SafetyLimits(command_timeout_s=10.5)
    SafetyLimits(command_timeout_s=10.0)


def test_speeds_are_clamped_to_the_limits():
    clock = FakeClock()
    r = robot(clock)
    g = r.move(3.0, -5.0)
    assert (g.linear, g.angular, g.clamped) == (0.5, -1.0, True)
    g = r.move(0.2, 0.1)
    assert (g.linear, g.angular, g.clamped) == (0.2, 0.1, False)


def test_straight_motion_integrates_exactly():
    clock = FakeClock()
    r = robot(clock)
    r.move(0.5, 0.0, duration_s=1.0)
    clock.advance(0.5)
    assert r.pose.x == pytest.approx(0.25)
    clock.advance(5.0)  # stopped at 1 s: 0.5 m, not 2.75 m
    assert r.pose.x == pytest.approx(0.5)
    assert r.state().linear == 0.0


def test_arc_follows_the_unicycle_model():
    clock = FakeClock()
    r = robot(clock, limits=SafetyLimits(command_timeout_s=10.0))
    # v = 0.5, w = 0.5 -> radius 1 m; a quarter turn takes pi seconds.
    r.move(0.5, 0.5)
    clock.advance(math.pi)
    p = r.pose
    assert (p.x, p.y, p.theta) == pytest.approx((1.0, 1.0, math.pi / 2), abs=1e-9)
    # the pose log records the motion and its end
    assert r.pose_log[0].linear == 0.0 and r.pose_log[1].linear == 0.5


def test_watchdog_stops_an_unrenewed_command_at_its_deadline():
    clock = FakeClock(100.0)
    r = robot(clock)
    r.move(0.4, 0.0)  # no duration: holds for command_timeout_s = 2 s
    clock.advance(1.999)
    assert r.state().linear == 0.4
    clock.advance(0.002)
    s = r.state()
    assert s.linear == 0.0 and s.motion_until is None and s.stops == 1
    # distance covered is exactly 2 s worth, whenever we look
    clock.advance(30)
    assert r.pose.x == pytest.approx(0.8)


def test_one_late_tick_still_stops_at_the_deadline():
    clock = FakeClock()
    r = robot(clock)
    r.move(0.5, 0.0)
    clock.advance(60.0)  # the runner was starved for a minute
    assert r.tick().pose.x == pytest.approx(1.0)


def test_renewal_extends_motion_and_a_long_duration_is_capped():
    clock = FakeClock()
    r = robot(clock)
    g = r.move(0.5, 0.0, duration_s=9.0)
    assert g.until == pytest.approx(2.0)  # capped by the timeout
    for _ in range(5):
        clock.advance(1.5)
        r.renew()
    assert r.state().linear == 0.5
    clock.advance(2.0)
    assert r.state().linear == 0.0
    assert r.pose.x == pytest.approx(0.5 * (7.5 + 2.0))


def test_emergency_stop_latches_until_reset():
    clock = FakeClock()
    r = robot(clock)
    r.move(0.5, 0.0)
    clock.advance(0.5)
    r.emergency_stop("bumper")
    s = r.state()
    assert s.estop and s.estop_reason == "bumper" and s.linear == 0.0
    clock.advance(1.0)
    assert r.pose.x == pytest.approx(0.25)
    with pytest.raises(EmergencyStopError):
        r.move(0.1)
    with pytest.raises(EmergencyStopError):
        r.head(0.5, 0.0)
    r.stop()  # stopping never clears the latch
    with pytest.raises(EmergencyStopError):
        r.turn(0.3)
    r.reset_emergency_stop()
    assert r.move(0.1).linear == 0.1


def test_head_moves_at_its_rate_within_limits():
    clock = FakeClock()
    r = robot(clock)
    assert r.head(3.0, -3.0) == (1.5, -0.5)
    clock.advance(0.25)
    s = r.state()
    assert (s.head_pan, s.head_tilt) == pytest.approx((0.25, -0.25))
    clock.advance(5)
    s = r.state()
    assert (s.head_pan, s.head_tilt) == pytest.approx((1.5, -0.5))


def test_kiosk_refuses_motion_clearly_but_shows_text():
    k = KioskDriver(clock=FakeClock(5.0))
    for call in (lambda: k.move(0.1), lambda: k.turn(0.1), lambda: k.head(0, 0),
                 k.renew, k.dock):
        with pytest.raises(MotionNotSupportedError, match="kiosk"):
            call()
    k.stop()
    k.display_text("Bonjour", "fr")
    s = k.state()
    assert s.kind == "kiosk" and s.battery is None and s.docked is None
    assert s.display.text == "Bonjour" and s.display.lang == "fr"
    res = apply_command(k, {"type": "move", "linear": 0.2})
    assert not res.ok and res.error == "motion_not_supported"


def test_battery_drains_faster_when_moving_and_charges_on_the_dock():
    model = RobotModel(battery_wh=100, idle_w=10, w_per_mps=60, w_per_rps=0, charge_w=110)
    clock = FakeClock()
    idle = robot(clock, model=model)
    moving = robot(clock, model=model, limits=SafetyLimits(command_timeout_s=10.0), battery=0.5)
    moving.move(0.5, 0.0)
    clock.advance(10.0)
    # idle: 10 W for 10 s; moving: 40 W for 10 s (of 100 Wh = 360 kJ)
    assert 1 - idle.state().battery == pytest.approx(100 / 360_000)
    assert 0.5 - moving.state().battery == pytest.approx(400 / 360_000)
    # drive back to the dock and charge
    moving.move(-0.5, 0.0, duration_s=9.5)
    clock.advance(10.0)
    assert moving.pose.x == pytest.approx(0.25)
    moving.dock()
    s = moving.state()
    assert s.docked and s.charging and s.pose == Pose()
    before = s.battery
    clock.advance(36.0)  # net 100 W for 36 s = 1 % of 100 Wh
    assert moving.state().battery - before == pytest.approx(0.01)
    clock.advance(3600.0)
    assert moving.state().battery == 1.0 and not moving.state().charging
    with pytest.raises(DockError, match="undock"):
        moving.move(0.1)
    moving.undock()
    moving.move(0.1)


def test_dock_refused_when_far_and_low_battery_refuses_then_stops_motion():
    clock = FakeClock()
    r = robot(clock, pose=Pose(2.0, 0.0, 0.0))
    with pytest.raises(DockError, match="drive closer"):
        r.dock()
    model = RobotModel(battery_wh=1.0, idle_w=0.0, w_per_mps=36.0, w_per_rps=0.0)
    r = robot(clock, model=model, battery=0.06, limits=SafetyLimits(command_timeout_s=10.0))
    r.move(0.5, 0.0)  # 18 W on 1 Wh: 0.5 %/s; 1 % above the floor lasts 2 s
    clock.advance(10.0)
    s = r.state()
    assert s.linear == 0.0 and s.battery == pytest.approx(0.05)
    assert r.pose.x == pytest.approx(1.0)
    with pytest.raises(BatteryError):
        r.move(0.1)


def test_apply_command_validates_and_reports():
    clock = FakeClock()
    r = robot(clock)
    ok = apply_command(r, {"type": "move", "linear": 9, "angular": 0})
    assert ok.ok and ok.detail["clamped"] and ok.state["linear"] == 0.5
    for bad in ({"type": "fly"}, {"type": "move"}, {"type": "move", "linear": "nan"},
                {"type": "move", "linear": 0.1, "extra": 1}, "junk", None,
                {"type": "move", "linear": 0.1, "duration_s": 60}):
        res = apply_command(r, bad)
        assert not res.ok and res.error == "invalid_command", bad
    r.emergency_stop()
    res = apply_command(r, {"type": "move", "linear": 0.1})
    assert not res.ok and res.error == "emergency_stop" and res.state["estop"]
    assert apply_command(r, {"type": "estop_reset"}).ok
    assert apply_command(r, {"type": "display", "text": "hi"}).state["display"]["text"] == "hi"


async def test_runner_stops_motion_on_time_and_on_close():
    r = SimulatedRobot(limits=SafetyLimits(command_timeout_s=0.2))
    seen = []
    async with DeviceRunner(r, tick_s=0.02, on_state=seen.append) as runner:
        assert runner.execute({"type": "move", "linear": 0.5}).ok
        await asyncio.sleep(0.35)
        assert seen[-1].linear == 0.0 and seen[-1].stops == 1
        assert r.pose.x == pytest.approx(0.1, abs=1e-6)
        runner.execute({"type": "move", "linear": 0.5, "duration_s": 5})
    assert r.state().linear == 0.0  # aclose stops the device
    assert runner._tasks is None


async def test_runner_reports_each_estop_change_once_with_who_asked():
    changes = []
    r = SimulatedRobot(limits=SafetyLimits(command_timeout_s=0.5))
    async with DeviceRunner(r, tick_s=0.02, on_estop=changes.append) as runner:
        res = runner.execute({"type": "estop", "reason": "worker"}, by="aiko",
                             source="data_channel")
        assert res.ok and res.state["estop"]
        runner.execute({"type": "estop", "reason": "again"}, by="aiko", source="data_channel")
        runner.execute({"type": "estop_reset"}, by="aiko", source="data_channel")
        runner.execute({"type": "estop_reset"}, by="aiko", source="data_channel")  # clear
        r.emergency_stop("bumper")  # the device itself: seen at the next tick
        await asyncio.sleep(0.1)
    assert [(c.latched, c.reason, c.by, c.source) for c in changes] == [
        (True, "worker", "aiko", "data_channel"), (False, "again", "aiko", "data_channel"),
        (True, "bumper", "device", "device")]
    assert all(c.at > 1e9 for c in changes)  # wall clock, for the case record
