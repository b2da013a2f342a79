"""Worker → resident chat: ``chat.say`` on the device (edge/chat.py), alone and end to end over
a real Mosquitto and a real router process, with real (tiny) Argos packages: the worker's
English message is shown in Japanese on the robot and the desk's transcript gets the
translation next to it."""

from __future__ import annotations

import re
import shutil

import pytest

from edge.chat import COMMAND, ChatRelay
from edge.device import DeviceRunner, SimulatedRobot
from edge.models import argos_dir
from edge.outbox import Outbox
from edge.sync import EdgeSync
from edge.translate import ArgosTranslator, TranslationService
from edge.translate.packages import install_package
from protocol.messages import Command
from sandbox.mosquitto import mosquitto_binary
from tests.helpers import require
from tests.mqtt.helpers import MqttRouter, await_until, edge_settings, fleet_config, start_broker
from tests.mqtt.helpers import token as device_token

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def translator(argos_packages, tmp_path_factory) -> ArgosTranslator:
    """The real Argos path with the tiny packages (en->ja says こんにちは, en->es hola)."""
    root = tmp_path_factory.mktemp("chat-models")
    for f in argos_packages.glob("*.argosmodel"):
        install_package(f, argos_dir(root))
    return ArgosTranslator(argos_dir(root), pivot="en")


class Events:
    def __init__(self):
        self.sent: list[tuple[str, str, dict]] = []

    async def emit(self, case_id: str, type: str, payload: dict) -> dict:
        self.sent.append((case_id, type, payload))
        return {}


def command(type_: str = COMMAND, **args) -> Command:
    return Command(command_id="cmd-1", type=type_, args=args, ts=0.0)


def say_args(**kw) -> dict:
    return {"case_id": "robot-1-abc", "turn_event_id": "ev-1", "text": "Your card is ready.",
            "language": "en", "to_language": "ja", **kw}


async def test_relay_translates_shows_and_reports(translator):
    events, robot = Events(), SimulatedRobot()
    async with TranslationService(translator) as translation, DeviceRunner(robot) as runner:
        relay = ChatRelay(events, runner, translation)  # a runner or a driver
        assert await relay(command(**say_args())) == ("done", "")
        shown = robot.state().display
        assert (shown.text, shown.lang) == ("こんにちは", "ja")
        assert events.sent == [("robot-1-abc", "translation", {
            "turn_event_id": "ev-1", "language": "ja", "text": "こんにちは"})]

        # Same language (ja-JP is ja): shown as written, nothing to report.
        assert await relay(command(**say_args(text="カードができました", language="ja",
                                              to_language="ja-JP"))) == ("done", "")
        assert robot.state().display.text == "カードができました" and len(events.sent) == 1

        # No package for the pair: shown as written, the receipt says why, and the case
        # record marks the turn untranslated (the worker's transcript shows it).
        status, detail = await relay(command(**say_args(to_language="zh")))
        assert status == "failed" and "shown untranslated in en" in detail
        assert "translate-en_zh" in detail
        assert robot.state().display.text == "Your card is ready." and len(events.sent) == 2
        case_id, type_, mark = events.sent[1]
        assert (case_id, type_, mark["turn_event_id"], mark["language"], mark["text"]) == \
            ("robot-1-abc", "translation", "ev-1", "zh", "")
        assert "translate-en_zh" in mark["untranslated"]


async def test_relay_refuses_bad_args_and_other_commands():
    events, robot = Events(), SimulatedRobot()
    relay = ChatRelay(events, robot)
    for args, where in [({**say_args(), "text": ""}, "text"),
                        ({k: v for k, v in say_args().items() if k != "case_id"}, "case_id"),
                        (say_args(to_language="Japanese"), "to_language"),
                        ({**say_args(), "extra": 1}, "extra")]:
        status, detail = await relay(command(**args))
        assert status == "failed" and detail.startswith(f"invalid {COMMAND} args: {where}")
    assert await relay(command("display.message", text="hi")) == \
        ("unsupported", "no handler for 'display.message'")
    # Without translation models the message is still shown.
    status, detail = await relay(command(**say_args()))
    assert status == "failed" and "no translation models" in detail
    assert robot.state().display.text == "Your card is ready."
    assert [(t, p["untranslated"]) for _, t, p in events.sent] == [
        ("translation", "this device has no translation models")]


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path):
    require(mosquitto_binary() is not None and shutil.which("mosquitto_passwd") is not None,
            "mosquitto and mosquitto_passwd", "run scripts/setup.sh (apt-get install mosquitto)")
    cfg = fleet_config(tmp_path, devices=1)
    b = start_broker(tmp_path, cfg)
    b.cfg_dir = cfg
    yield b
    b.kill()


@pytest.fixture
def router(tmp_path, broker):
    r = MqttRouter(broker.cfg_dir, tmp_path / "router.db", broker.port)
    r.http = r.start()
    yield r
    r.http.close()
    r.kill()


def worker(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer demo-{name}-token-0001"}


async def test_worker_message_is_shown_translated_on_the_robot(tmp_path, router, broker,
                                                               translator):
    robot = SimulatedRobot()
    async with Outbox(tmp_path / "robot-1.db", "robot-1") as outbox, \
            TranslationService(translator) as translation:
        sync = EdgeSync(edge_settings("robot-1", broker.port, site="city-office"), outbox)
        sync.on_command = ChatRelay(sync, robot, translation)
        async with sync:
            await sync.client.wait_connected(10)
            http = router.http
            r = http.put("/v1/workers/haruto/presence", json={"presence": "available"},
                          headers=worker("haruto"))
            assert r.status_code == 200, r.text
            r = http.post("/v1/cases", json={"site": "city-office", "device": "robot-1",
                                             "language": "ja", "skills": {"residency": 3}},
                          headers={"Authorization": f"Bearer {device_token('robot-1')}"})
            assert r.status_code == 201, r.text
            case_id, offer = r.json()["id"], r.json()["pending_offer"]
            assert offer["worker_id"] == "haruto"
            r = http.post(f"/v1/offers/{offer['offer_id']}/accept", headers=worker("haruto"))
            assert r.status_code == 200, r.text

            r = http.post(f"/v1/cases/{case_id}/messages", headers=worker("haruto"),
                          json={"text": "Your card is ready", "language": "en"})
            assert r.status_code == 201, r.text
            sent = r.json()
            assert sent["delivered_to"] == "robot-1"

            shown = await await_until(lambda: robot.state().display, 15,
                                      "the robot to show the message")
            assert shown.lang == "ja" and JAPANESE.search(shown.text), shown

            def translated():
                packet = http.get(f"/v1/cases/{case_id}").json()["packet"]
                entry = next(t for t in packet["transcript"]
                             if t["event_id"] == sent["event_id"])
                return entry if entry["translated"] else None

            entry = await await_until(translated, 15, "the translation in the packet", 0.2)
            assert (entry["speaker"], entry["worker_id"], entry["language"], entry["text"]) == \
                ("human", "haruto", "en", "Your card is ready")
            assert entry["translated_language"] == "ja" and entry["translated"] == shown.text

            def receipt():
                row = http.get(f"/v1/sync/commands/{sent['command_id']}").json()
                return row if row["status"] != "pending" else None

            row = await await_until(receipt, 10, "the command's receipt", 0.2)
            assert (row["type"], row["status"], row["args"]["to_language"]) == \
                ("chat.say", "done", "ja")
