"""The whole edge node of a kiosk or robot, connected to a router: ``baton edge --router …``.

    resident (speech via EdgeNode, or typed) → translate → POST /v1/cases/{id}/turns
        ← the AI's reply or "connecting you to a person" → translated → the device's screen
        → while a person is on video: a caption (translation + original) to the worker
    router → MQTT signal/down → SignalLink → MediaPeer (answer) per session; a new session
        for the same case (the browser retrying after an ICE failure) replaces the old peer
    router → MQTT command ``chat.say`` (a worker's message or caption, recorded by the
        router first) → ChatRelay → translated → the screen + a ``translation`` event (or an
        ``untranslated`` mark) back through the outbox; captions a worker sends straight on
        the data channel are not shown (they are not in the case record)
    the resident's screen (edge/screen): a page on 127.0.0.1 that Chromium shows in kiosk
        mode (``--display browser``); every happening above updates its ScreenModel, the
        worker's video reaches it through a loopback WebRTC relay
    router → ``emergency.notice`` / ``emergency.clear`` → the screen's emergency state
    DeviceRunner: motion within the safety limits, the watchdog ticking on time

Everything here owns its tasks and closes them in ``aclose()``; nothing blocks the loop (the
translator and Whisper run in their own threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import BatonError
from common.tasks import Supervisor, SupervisorClosed
from edge.device import DeviceDriver, DeviceRunner, EstopChange, SafetyLimits, make_driver
from edge.node import EdgeConfig, EdgeNode, ResidentTurn
from edge.outbox import Outbox
from edge.screen.host import ScreenHost, chromium_path
from edge.screen.model import Worker
from edge.screen.strings import load_screen_config
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings
from edge.webrtc import MediaPeer, open_local_media
from edge.webrtc.channels import Caption, CaptionText
from edge.webrtc.display import make_display
from edge.webrtc.mqtt_signaler import MqttSignaler, SignalLink
from protocol.messages import CaseUpdate, Command

log = logging.getLogger("baton.edge.station")

TERMINAL = {"resolved", "abandoned"}  # protocol.models.TERMINAL_STATES
OPEN_RETRIES = 1  # a turn for a case closed meanwhile opens a new case once


EMERGENCY_COMMAND = "emergency.notice"  # docs/protocol.md §5
EMERGENCY_CLEAR = "emergency.clear"


class EmergencyNotice(BaseModel):
    """``emergency.notice`` args: what the resident's screen says, in their language."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=500)
    number: str = Field(min_length=1, max_length=32)
    language: str = Field(min_length=2, max_length=16)
    case_id: str | None = Field(default=None, max_length=80)


def display_kind(display: str) -> str:
    """auto: the browser page where Chromium and a screen exist, else the Tk window where
    a screen exists, else recording only."""
    import os

    if display != "auto":
        return display
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "record"
    return "browser" if chromium_path() else "window"


class StationError(BatonError):
    """The router refused something the station needs (the message says what to do)."""

    reason = "router_refused"


@dataclass(slots=True)
class StationOptions:
    router_url: str
    token: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_protocol: str = "5"  # common.mqtt.client.Settings.protocol (3.1.1 on amqtt)
    outbox_path: str | Path = "edge-outbox.db"
    video: str = "auto"        # edge.webrtc.open_local_media: auto | test | none | path
    audio: str = "tone"
    display: str = "auto"      # auto | browser | window | record (edge.screen.host)
    screen_port: int | None = 8089  # the resident's page on 127.0.0.1 (0: any free port;
                                    # None: no page)
    screen_config: str | Path | None = None  # default config/edge/screen.yaml
    kiosk: bool = True  # display "browser": full screen (False: an app window, e.g. the demo)
    speech: bool = True        # load Whisper (False: typed turns and translation only)
    command_timeout_s: float = 2.0
    heartbeat_s: float = 10.0
    state_interval_s: float = 0.5


class Station:
    def __init__(self, cfg: EdgeConfig, opts: StationOptions, *,
                 driver: DeviceDriver | None = None, models: str | None = None,
                 print_events: bool = False):
        self.cfg, self.opts, self.print_events = cfg, opts, print_events
        self.driver = driver or make_driver(
            cfg.kind, SafetyLimits(command_timeout_s=opts.command_timeout_s))
        self.runner = DeviceRunner(self.driver, on_estop=self._estop_changed)
        self.node = EdgeNode(cfg, self, assistant=self._ask_router, models=models,
                             speech=opts.speech)
        self.outbox = Outbox(opts.outbox_path, cfg.device)
        self.sync = EdgeSync(
            EdgeSettings(cfg.site, cfg.device, cfg.kind,
                         edge_mqtt_settings(cfg.device, opts.token, opts.mqtt_host,
                                            opts.mqtt_port, protocol=opts.mqtt_protocol),
                         heartbeat_s=opts.heartbeat_s),
            self.outbox, on_command=self._command, on_case=self._on_case,
            telemetry=self._telemetry)
        self.link = SignalLink.attach(self.sync)
        self.http = httpx.AsyncClient(base_url=opts.router_url, timeout=10.0,
                                      headers={"Authorization": f"Bearer {opts.token}"})
        self.chat: Any = None  # edge.chat.ChatRelay once the node's translator is up
        self.case_id: str | None = None  # the conversation at the device now
        self.case_language: str | None = None
        self.case: CaseUpdate | None = None
        self.peer: MediaPeer | None = None
        self.screen: ScreenHost | None = None
        self._reply_ids: dict[str, str] = {}  # the AI reply's text → its turn event id
        # Every task of the station (the session loop, ending a video, recording an action):
        # a failure is logged with the device's name, never lost with its task.
        self.tasks = Supervisor(f"station-{cfg.device}", logger=log,
                                context={"device": cfg.device})
        self._seq = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Station:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        await self.outbox.open()
        self.runner.start()
        if self.opts.screen_port is not None:
            screen_cfg = load_screen_config(self.opts.screen_config or self.cfg.screen,
                                            self.cfg.languages)
            self.screen = ScreenHost(screen_cfg, self.cfg.languages, self,
                                     port=self.opts.screen_port,
                                     browser=display_kind(self.opts.display) == "browser",
                                     fullscreen=self.opts.kiosk)
            await self.screen.start()
        await self.node.start()
        if self.screen is not None:
            self.screen.model.speech = self.node.status.get("asr") == "ready"
        from edge.chat import ChatRelay

        self.chat = ChatRelay(self.sync, self.driver, self.node.translation,
                              on_shown=self._worker_message_shown)
        await self.sync.start()
        self.tasks.keep("sessions", self._sessions)
        self._out("station", {"site": self.cfg.site, "device": self.cfg.device,
                              "kind": self.cfg.kind, **self.node.status,
                              "screen_url": self.screen.url if self.screen else None})

    async def aclose(self) -> None:
        if self.screen is not None:
            await self.screen.aclose()
        # Inputs first (no new session, case update or command starts work), then the
        # video, then whatever is still running.
        await self.link.aclose()
        await self.sync.aclose()
        await self._close_video()
        await self.tasks.aclose()
        await self.node.aclose()
        await self.runner.aclose()
        await self.outbox.aclose()
        await self.http.aclose()

    # --- the resident ---------------------------------------------------------------------

    async def say(self, text: str, language: str) -> None:
        """A resident's typed turn (the kiosk keyboard, or the simulated resident)."""
        await self.node.submit_text(text, language)

    async def _ask_router(self, turn: ResidentTurn) -> tuple[str, str] | str | None:
        """The EdgeNode's assistant hook: the router's transition layer answers."""
        body = {"text": turn.text, "language": turn.language,
                "translated": turn.pivot_text if turn.pivot_language != turn.language
                else None}
        if turn.untranslated:
            # Recorded as said, marked: the worker sees the original and knows why.
            body["untranslated"] = turn.untranslated[:300]
        for attempt in range(OPEN_RETRIES + 1):
            case_id = self.case_id or await self._open_case(turn.language)
            r = await self.http.post(f"/v1/cases/{case_id}/turns", json=body)
            if r.status_code == 409 and attempt < OPEN_RETRIES:
                self.case_id = None  # closed meanwhile: a new conversation
                continue
            if r.status_code != 200:
                raise StationError(f"the router refused the turn ({r.status_code}): {r.text}")
            break
        out = r.json()
        if self._live():  # recorded: now the worker may see it
            self._caption_resident(turn)
        self._out("router_turn", {"case_id": case_id, "ai_silent": out["ai_silent"],
                                  "decision": out["decision"]["decision"],
                                  "handoff": out["handoff"]})
        if out["handoff"]:
            wait = out["handoff"].get("wait_estimate_s")
            # The waiting screen says "connecting you to a person" in reviewed words
            # (config/edge/screen.yaml), with the estimate and what to have ready.
            shown, lang = out["handoff"]["message"], turn.pivot_language
            if self.screen is not None and turn.language in self.screen.cfg.languages:
                shown, lang = self.screen.cfg.languages[turn.language].connecting, turn.language
            self.driver.display_text(shown, lang)
            self._out("display", {"text": shown, "lang": lang, "from": "router",
                                  "wait_estimate_s": wait})
            if self.screen is not None:
                self.screen.model.handoff(wait, out.get("intent"))
                self.screen.push()
        if out["reply"]:
            if out["reply"].get("event_id"):
                if len(self._reply_ids) > 100:  # replies never shown (a failed turn)
                    self._reply_ids.clear()
                self._reply_ids[out["reply"]["text"]] = out["reply"]["event_id"]
            return out["reply"]["text"], out["reply"]["language"]
        if self.screen is not None:
            self.screen.model.answered()
            self.screen.push()
        return None

    async def _open_case(self, language: str) -> str:
        channel = "video" if self.cfg.kind == "robot" else "chat"
        r = await self.http.post("/v1/cases", json={
            "site": self.cfg.site, "device": self.cfg.device, "language": language,
            "channel": channel, "escalate": False})  # the AI first; the router decides
        if r.status_code != 201:
            raise StationError(f"the router did not open a case ({r.status_code}): {r.text}")
        self.case_id, self.case_language = r.json()["id"], language
        if self.screen is not None:
            self.screen.model.case_opened(self.case_id)
            self.screen.push()
        self._out("case_opened", {"case_id": self.case_id, "language": language})
        return self.case_id

    def _caption_resident(self, turn: ResidentTurn) -> None:
        self._seq += 1
        original = CaptionText(text=turn.text, lang=turn.language) \
            if turn.pivot_language != turn.language else None
        self.peer.send_caption(Caption(id=f"r{self._seq}", speaker="resident",
                                       text=turn.pivot_text, lang=turn.pivot_language,
                                       original=original, ts=time.time()))

    # --- EventSink (what the EdgeNode reports) --------------------------------------------

    async def emit(self, type: str, payload: dict[str, Any]) -> None:
        if type == "turn" and payload["speaker"] == "resident" and self.screen is not None:
            self._seq += 1
            self.screen.model.resident_said(f"r{self._seq}", payload["text"],
                                            payload["language"])
            self.screen.push()
        if type == "turn" and payload["speaker"] == "ai":
            await self._show_ai_turn(payload)
        elif type == "caption" and self._live():
            # A partial of the resident's speech, in their language (the final follows).
            self.peer.send_caption(Caption(
                id=f"u{payload['utterance']}", speaker="resident", final=False,
                text=(payload["stable"] + " " + payload["unstable"]).strip() or "…",
                lang=payload["language"]))
        self._out(type, payload)

    # --- telepresence sessions ------------------------------------------------------------

    def _live(self) -> bool:
        """A worker is on video with the device (captions have somewhere to go)."""
        return self.peer is not None and self.peer.connected.is_set()

    async def _sessions(self) -> None:
        while True:
            signaler = await self.link.next_session()
            await self._close_video()  # a new session for a case replaces the old one
            try:
                self.peer = await self._answer(signaler)
            except Exception:
                log.exception("telepresence session failed to start",
                              extra={"case_id": signaler.case_id})

    async def _answer(self, signaler: MqttSignaler) -> MediaPeer:
        media = await asyncio.to_thread(open_local_media, self.opts.video, self.opts.audio)
        peer: MediaPeer | None = None

        def on_track(track) -> None:
            if track.kind == "video" and self.screen is not None and peer is not None:
                self.tasks.spawn(self.screen.video_on(peer), "page-video")

        display = "record" if display_kind(self.opts.display) == "browser" \
            else self.opts.display
        peer = MediaPeer(signaler, role="answer", media=media,
                         display=make_display(display), device=self.runner,
                         on_caption=self._worker_caption, on_track=on_track,
                         ice_servers=signaler.ice_servers,
                         name=f"edge-{self.cfg.device}",
                         state_interval_s=self.opts.state_interval_s,
                         remote=signaler.worker)
        await peer.start()
        self._out("session", {"case_id": signaler.case_id, "session": signaler.session,
                              "worker": signaler.worker})
        return peer

    def _worker_caption(self, cap: Caption) -> None:
        # Nothing reaches the resident's screen that is not in the case record: a worker's
        # words come as ``chat.say`` (POST /v1/cases/{id}/messages records them first).
        if cap.speaker == "worker" and cap.final:
            self._out("caption_refused", {
                "message": "worker captions reach the resident only as recorded messages "
                           "(POST /v1/cases/{id}/messages)"})

    def _resident_language(self) -> str:
        return self.case_language or self.cfg.languages[0]

    async def _show_ai_turn(self, payload: dict[str, Any]) -> None:
        """The AI's reply on the screen, and its translation into the case record (the
        worker later sees exactly what the resident read)."""
        shown = payload.get("translated") or payload["text"]
        lang = payload.get("translated_language") or payload["language"]
        resident = self._resident_language()
        untranslated = payload.get("translated") is None and \
            lang.split("-")[0] != resident.split("-")[0]
        self.driver.display_text(shown, lang)
        self._out("display", {"text": shown, "lang": lang, "from": "ai",
                              "untranslated": untranslated})
        event_id = self._reply_ids.pop(payload["text"], None)
        if event_id and self.case_id and (payload.get("translated") or untranslated):
            record = {"turn_event_id": event_id, "language": resident,
                      "text": payload.get("translated") or ""}
            if untranslated:
                record["untranslated"] = f"no translation from {payload['language']} to " \
                                         f"{resident} on this device"
            try:
                await self.sync.emit(self.case_id, "translation", record)
            except Exception as exc:  # noqa: BLE001 - shown anyway; say it was not recorded
                self._out("edge_error", {"component": "record", "message": str(exc)})
        if self.screen is not None:
            original = (payload["text"], payload["language"]) if payload.get("translated") \
                else None
            self.screen.model.ai_said(event_id or f"a{self._seq}", shown, lang,
                                      original=original, untranslated=untranslated)
            self.screen.push()

    def _worker_message_shown(self, turn_event_id: str, shown: str, lang: str,
                              original: tuple[str, str], untranslated: bool) -> None:
        """A worker's message (recorded by the router first) is on the device's screen."""
        self.driver.display_text(shown, lang)
        self._out("display", {"text": shown, "lang": lang, "from": "worker",
                              "untranslated": untranslated})
        if self.screen is not None:
            self.screen.model.worker_said(turn_event_id, shown, lang,
                                          original=original if not untranslated else None,
                                          untranslated=untranslated)
            self.screen.push()
        if self._live():  # what the resident reads, on the worker's live captions too
            self.peer.send_caption(Caption(
                id=turn_event_id[-60:], speaker="worker", text=shown, lang=lang,
                original=CaptionText(text=original[0], lang=original[1])
                if not untranslated else None))

    # --- the resident's page (edge.screen.host.ScreenActions) -------------------------

    async def rate(self, case_id: str, score: int) -> None:
        await self.sync.emit(case_id, "rating", {"score": score})
        self._out("rating", {"case_id": case_id, "score": score})

    # --- from the router ------------------------------------------------------------------

    def _on_case(self, update: CaseUpdate) -> None:
        if update.case_id != self.case_id and update.state not in TERMINAL:
            self.case_id = update.case_id  # opened elsewhere (e.g. another surface)
        self.case = update
        if update.state in TERMINAL and update.case_id == self.case_id:
            self.case_id = self.case_language = None
        if update.state != "connected" and self.peer is not None:
            # Transferred or closed: no frozen frame of this worker stays up.
            self.tasks.spawn(self._end_video(), "end-video", case_id=update.case_id)
        if self.screen is not None:
            worker = None
            if update.assigned_worker:
                name = update.worker_name or update.assigned_worker
                worker = Worker(update.assigned_worker, name.split()[0],
                                update.worker_kind or "agent")
            self.screen.model.case_state(update.case_id, update.state, worker,
                                         self.screen.clock())
            self.screen.push()
        self._out("case", {"case_id": update.case_id, "state": update.state,
                           "worker": update.assigned_worker})

    async def _close_video(self) -> None:
        """End the current video session, if any, and wait for the end. A peer that fails to
        close is logged by the supervisor and forgotten: the next session is still answered,
        and the station still closes."""
        if self.peer is not None:
            await asyncio.wait([self.tasks.spawn(self._end_video(), "end-video",
                                                 case_id=self.case_id)])

    async def _end_video(self) -> None:
        peer, self.peer = self.peer, None
        if self.screen is not None:
            await self.screen.video_off()
        if peer is not None:
            await peer.aclose()

    async def _command(self, cmd: Command) -> str | tuple[str, str]:
        if cmd.type == EMERGENCY_COMMAND:
            return self._emergency(cmd)
        if cmd.type == EMERGENCY_CLEAR:
            self._out("emergency_cleared", {})
            if self.screen is not None:
                self.screen.model.emergency_cleared()
                self.screen.push()
            return "done", ""
        if cmd.type == "chat.say" and self.chat is not None:
            status, detail = await self.chat(cmd)
            self._out("chat", {"command_id": cmd.command_id, "status": status,
                               "detail": detail})
            shown = self.driver.state().display  # what the resident now reads
            if shown is not None:
                self._out("display", {"text": shown.text, "lang": shown.lang,
                                      "from": "router"})
            return status, detail
        return "unsupported", f"this device has no handler for {cmd.type!r}"

    def _emergency(self, cmd: Command) -> tuple[str, str]:
        try:
            notice = EmergencyNotice.model_validate(cmd.args)
        except ValidationError as exc:
            return "failed", f"invalid {EMERGENCY_COMMAND} args: {exc.errors()[0]['msg']}"
        self.driver.display_text(f"{notice.text} {notice.number}", notice.language)
        self._out("emergency", notice.model_dump())
        if self.screen is not None:
            self.screen.model.emergency_notice(notice.text, notice.number, notice.language)
            self.screen.push()
        return "done", ""

    def _estop_changed(self, change: EstopChange) -> None:
        """The e-stop latched or was reset (DeviceRunner.on_estop, on the loop): recorded on
        the case as an ``action`` event through the outbox; the router audits it
        (router/audit.py). From the data channel, the case is the session's."""
        tool = "estop" if change.latched else "estop_reset"
        case_id, session = self.case_id, None
        if change.source == "data_channel" and self.peer is not None:
            case_id, session = self.peer.signaler.case_id, self.peer.signaler.session
        args = {"by": change.by, "source": change.source, "reason": change.reason,
                "session": session}
        self._out(tool, {"case_id": case_id, **args})
        if case_id is None:
            # No case to hold it: the device's own log and state report it (docs/security.md).
            log.warning("e-stop change outside any case: not in the router's audit log",
                        extra={"estop": tool, "by": change.by})
            return
        try:
            self.tasks.spawn(self._record(case_id, "action",
                                          {"tool": tool, "args": args, "ok": True}, change.at),
                             f"record-{tool}", case_id=case_id)
        except SupervisorClosed:  # the station is closing: its log keeps the change
            log.warning("e-stop change while the station closes: not in the router's audit "
                        "log", extra={"estop": tool, "by": change.by, "case_id": case_id})

    async def _record(self, case_id: str, type: str, payload: dict[str, Any],
                      ts: float) -> None:
        try:
            await self.sync.emit(case_id, type, payload, ts=ts)
        except Exception as exc:  # noqa: BLE001 - the device acted; say it was not recorded
            self._out("edge_error", {"component": "record", "message": str(exc)})

    def _telemetry(self) -> dict[str, Any]:
        s = self.driver.state()
        out: dict[str, Any] = {}
        if s.battery is not None:
            out["battery"] = {"percent": round(s.battery * 100, 1), "charging": s.charging}
        if s.docked is not None:
            out["docked"] = s.docked
        return out

    # --- output ---------------------------------------------------------------------------

    def _out(self, type: str, payload: dict[str, Any]) -> None:
        log.info("edge %s", type, extra={"event": type})
        if self.print_events:
            print(json.dumps({"event": type, "ts": time.time(), **payload},
                             ensure_ascii=False, default=str), flush=True)


async def read_resident_lines(station: Station, stream=None) -> None:
    """The simulated resident (an honest stand-in for the kiosk keyboard): one turn per line
    on stdin, ``<language>: <text>`` (e.g. ``ja: 人と話したいです``)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     stream or sys.stdin)
    except (ValueError, OSError) as exc:  # stdin is a regular file, or closed
        station._out("input_error", {"message": f"no resident input on stdin: {exc}"})
        return
    while line := await reader.readline():
        text = line.decode("utf-8", "replace").strip()
        lang, sep, said = text.partition(":")
        if not sep or not said.strip() or lang.strip() not in station.cfg.languages:
            station._out("input_error", {
                "line": text[:200], "message": "expected '<language>: <text>' with one of "
                f"{', '.join(station.cfg.languages)}"})
            continue
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await station.say(said.strip(), lang.strip())
            except Exception as exc:  # noqa: BLE001 - one bad turn must not end the input
                station._out("input_error", {"line": text[:200], "message": str(exc)})


# --- the command ----------------------------------------------------------------------------


def add_station_arguments(p) -> None:
    g = p.add_argument_group("connected to a router (telepresence, chat, the AI via the router)")
    g.add_argument("--router", default=None, help="the router's URL, e.g. http://127.0.0.1:8000;"
                   " without it the node runs alone and only reports events")
    g.add_argument("--token", default=None, help="the device's bearer token (default "
                   "$BATON_DEVICE_TOKEN); also its MQTT password")
    g.add_argument("--mqtt-host", default="127.0.0.1")
    g.add_argument("--mqtt-port", type=int, default=1883)
    g.add_argument("--mqtt-protocol", choices=["5", "3.1.1"], default="5",
                   help="the MQTT version the broker speaks (3.1.1 for amqtt or NATS)")
    g.add_argument("--outbox", default=None, help="the outbox database (default "
                   "./var/edge-<device>.db)")
    g.add_argument("--video", default="auto", help="auto (camera if present, else a test "
                   "pattern) | test | none | a file or /dev/videoN")
    g.add_argument("--audio-out", default="tone", help="tone | silence | none | a file | "
                   "alsa:<device> | pulse:<device>")
    g.add_argument("--display", default="auto", choices=["auto", "browser", "window", "record"],
                   help="browser: the resident's page in Chromium kiosk mode (the default "
                   "where Chromium and a screen exist); window: a Tk window (fallback); "
                   "record: no screen (the page is still served)")
    g.add_argument("--screen-port", type=int, default=8089, help="the resident's page on "
                   "http://127.0.0.1:PORT/ (0: any free port, printed in the station event; "
                   "-1: no page)")
    g.add_argument("--no-speech", action="store_true", help="typed turns only (no Whisper)")
    g.add_argument("--command-timeout", type=float, default=2.0,
                   help="seconds a motion runs without renewal (at most 10)")
    g.add_argument("--resident-stdin", action="store_true", help="the simulated resident: "
                   "read '<language>: <text>' turns from stdin")


def run_station(cfg: EdgeConfig, args) -> int:
    import os
    import signal

    token = args.token or os.environ.get("BATON_DEVICE_TOKEN")
    if not token:
        print("baton edge: --router needs the device's token: pass --token or set "
              "BATON_DEVICE_TOKEN (config/tokens.yaml lists the demo tokens)", flush=True)
        return 2
    if not 0 < args.command_timeout <= 10:
        print(f"baton edge: --command-timeout must be in (0, 10] s, got {args.command_timeout}",
              flush=True)
        return 2
    if args.screen_port >= 0:
        from common.config import ConfigError

        try:  # a bad screen file is a clear error before anything starts
            load_screen_config(cfg.screen, cfg.languages)
        except ConfigError as exc:
            print(f"baton edge: invalid configuration: {exc}", flush=True)
            return 2
    outbox = args.outbox or f"var/edge-{cfg.device}.db"
    Path(outbox).parent.mkdir(parents=True, exist_ok=True)
    opts = StationOptions(router_url=args.router.rstrip("/"), token=token,
                          mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
                          mqtt_protocol=args.mqtt_protocol,
                          outbox_path=outbox, video=args.video, audio=args.audio_out,
                          display=args.display, speech=not args.no_speech,
                          screen_port=None if args.screen_port < 0 else args.screen_port,
                          command_timeout_s=args.command_timeout)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Station(cfg, opts, models=args.models_dir,
                           print_events=args.print_events) as station:
            if args.resident_stdin:
                station.tasks.spawn(read_resident_lines(station), "resident-stdin")
            try:
                await asyncio.wait_for(stop.wait(), args.seconds)
            except TimeoutError:
                pass

    from edge.screen.server import ScreenError

    try:
        asyncio.run(main())
    except ScreenError as exc:
        print(f"baton edge: {exc}", flush=True)
        return 2
    return 0
