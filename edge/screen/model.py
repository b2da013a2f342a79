"""What the resident's screen shows: a pure state machine fed by the station.

``ScreenModel`` holds one resident's visit — their language, the conversation lines, whether
the AI is thinking, the wait, the worker on video — and turns it into the snapshot the page
renders (``snapshot()``). It does no I/O and reads no clock: the station feeds it what
happened and the time, and pushes every snapshot to the page.

States (docs/edge.md, "The resident's screen"):
    idle → ai → waiting → person → transfer → person … → end → (cleared) idle
    emergency overrides any state until the visit is cleared.

Only what is in the case record reaches ``lines``: the resident's turns and the AI's replies
(as recorded, with the translation the edge recorded), the worker's messages (recorded by the
router before the device sees them). UI chrome (titles, "connecting you to a person") comes
from the reviewed strings, never from a translation model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edge.screen.strings import ScreenConfig

State = Literal["idle", "ai", "waiting", "person", "transfer", "end", "emergency"]
MAX_LINES = 200  # a visit longer than this keeps its last lines on screen

WAITING_STATES = {"queued", "offered", "escalating"}
TERMINAL = {"resolved", "abandoned"}


@dataclass(slots=True)
class Line:
    id: str
    speaker: Literal["resident", "ai", "worker"]
    text: str
    lang: str
    original: dict[str, str] | None = None  # {"text", "lang"} when ``text`` is a translation
    untranslated: bool = False  # shown as written: no translation covers the pair

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "speaker": self.speaker, "text": self.text,
                             "lang": self.lang}
        if self.original:
            d["original"] = self.original
        if self.untranslated:
            d["untranslated"] = True
        return d


@dataclass(slots=True)
class Worker:
    id: str
    first_name: str
    role: str  # remote_worker | agent | specialist | floor_staff


@dataclass
class ScreenModel:
    cfg: ScreenConfig
    site_languages: list[str]
    state: State = "idle"
    language: str | None = None
    case_id: str | None = None
    lines: list[Line] = field(default_factory=list)
    thinking: bool = False
    wait_s: float | None = None
    have_ready: list[str] = field(default_factory=list)
    worker: Worker | None = None
    video: bool = False        # the worker's video is on the page
    camera_on: bool = False    # the device's camera is sent to a person
    emergency: dict[str, str] | None = None
    _before_emergency: State = "idle"
    rating: int | None = None
    clear_at: float | None = None  # when the goodbye screen clears itself (the station's clock)
    visit: int = 0             # a new number for every resident: the page wipes everything
    speech: bool = False       # the device listens (speech recognition is running)
    version: int = 0

    # --- what happened ----------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1

    def choose_language(self, language: str) -> None:
        if language not in self.site_languages:
            raise ValueError(f"language {language!r} is not served here: one of "
                             f"{self.site_languages}")
        self.language = language
        self._changed()

    def resident_said(self, line_id: str, text: str, language: str) -> None:
        if self.state in ("idle", "end"):
            if self.state == "end":
                self._new_visit()
            self.state = "ai"
        self.language = language
        self._add(Line(line_id, "resident", text, language))
        self.thinking = True

    def case_opened(self, case_id: str) -> None:
        if self.case_id is not None and self.case_id != case_id and self.state == "end":
            self._new_visit()
        self.case_id = case_id
        self._changed()

    def ai_said(self, line_id: str, shown: str, shown_lang: str, *,
                original: tuple[str, str] | None, untranslated: bool) -> None:
        self.thinking = False
        orig = {"text": original[0], "lang": original[1]} if original else None
        self._add(Line(line_id, "ai", shown, shown_lang, orig, untranslated))

    def answered(self) -> None:
        """The router answered the resident's turn (with or without a reply)."""
        self.thinking = False
        self._changed()

    def handoff(self, wait_s: float | None, intent: str | None) -> None:
        self.thinking = False
        if self.state in ("idle", "ai"):
            self.state = "waiting"
        self.wait_s = wait_s
        self.have_ready = self.cfg.ready_list(intent, self.language or self.site_languages[0])
        self._changed()

    def worker_said(self, line_id: str, shown: str, shown_lang: str, *,
                    original: tuple[str, str] | None, untranslated: bool) -> None:
        orig = {"text": original[0], "lang": original[1]} if original else None
        self._add(Line(line_id, "worker", shown, shown_lang, orig, untranslated))

    def case_state(self, case_id: str, state: str, worker: Worker | None, now: float) -> None:
        if self.case_id is not None and case_id != self.case_id:
            return  # another (older) case of this device
        if self.state == "end":
            return  # this visit is over (a repeated update changes nothing)
        if self.case_id is None:
            if state in TERMINAL:
                return
            self.case_id = case_id
        if state in TERMINAL:
            self._end(now)
        elif state == "transferring":
            self.state, self.video = "transfer", False
        elif state == "connected":
            self.worker = worker
            self.state = "person"
        elif state in WAITING_STATES and self.state not in ("waiting",):
            if self.state != "transfer":
                self.state = "waiting"
        elif state == "handed_back" or (state == "ai_active" and self.state == "idle"):
            self.state, self.video, self.camera_on, self.worker = "ai", False, False, None
        if self.emergency is not None and self.state not in ("end", "emergency"):
            self._before_emergency, self.state = self.state, "emergency"
        self._changed()

    def video_started(self) -> None:
        self.video = self.camera_on = self.state in ("person", "emergency")
        self._changed()

    def video_ended(self) -> None:
        self.video = self.camera_on = False
        self._changed()

    def emergency_notice(self, text: str, number: str, language: str) -> None:
        self.emergency = {"text": text, "number": number, "lang": language}
        if self.state not in ("end", "emergency"):
            self._before_emergency = self.state
            self.state = "emergency"
        self._changed()

    def emergency_cleared(self) -> None:
        """Staff have it in hand (``emergency.clear``): back to where the visit was."""
        if self.emergency is None:
            return
        self.emergency = None
        if self.state == "emergency":
            self.state = self._before_emergency
        self._changed()

    def rate(self, score: int, now: float) -> None:
        if self.state != "end":
            raise ValueError("a rating is taken on the goodbye screen only")
        if not 1 <= score <= 5:
            raise ValueError("a rating is 1 to 5")
        self.rating = score
        self.clear_at = now + self.cfg.clear_after_rating_s
        self._changed()

    def more_time(self, now: float) -> None:
        if self.state == "end":
            self.clear_at = now + self.cfg.clear_after_s
            self._changed()

    def finish(self) -> None:
        if self.state == "end":
            self.clear()

    def tick(self, now: float) -> bool:
        """Clears the goodbye screen when its time is up; True if it did."""
        if self.state == "end" and self.clear_at is not None and now >= self.clear_at:
            self.clear()
            return True
        return False

    def clear(self) -> None:
        """Everything of this resident leaves the screen."""
        self._new_visit()
        self.state = "idle"
        self._changed()

    # --- internals --------------------------------------------------------------------

    def _end(self, now: float) -> None:
        self.state, self.video, self.camera_on, self.thinking = "end", False, False, False
        self.clear_at = now + self.cfg.clear_after_s
        self.rating = None

    def _new_visit(self) -> None:
        self.visit += 1
        self.state = "idle"
        self.language = self.case_id = self.worker = self.emergency = None
        self.lines, self.have_ready = [], []
        self.thinking = self.video = self.camera_on = False
        self.wait_s = self.rating = self.clear_at = None

    def _add(self, line: Line) -> None:
        self.lines.append(line)
        del self.lines[:-MAX_LINES]
        self._changed()

    # --- what the page renders ----------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        lang = self.language or self.site_languages[0]
        s = self.cfg.languages[lang]
        worker = None
        if self.worker is not None:
            worker = {"name": self.worker.first_name,
                      "role": s.roles.get(self.worker.role, self.worker.role)}
        return {
            "type": "screen", "visit": self.visit, "version": self.version,
            "state": self.state, "language": lang, "chosen": self.language is not None,
            "strings": s.model_dump(exclude={"roles"}),
            "languages": [{"code": c, "name": self.cfg.languages[c].name,
                           "welcome": self.cfg.languages[c].welcome}
                          for c in self.site_languages],
            "lines": [ln.as_dict() for ln in self.lines],
            "thinking": self.thinking, "speech": self.speech, "wait_s": self.wait_s, "have_ready": self.have_ready,
            "worker": worker, "video": self.video, "camera_on": self.camera_on,
            "emergency": self.emergency, "rating": self.rating,
            "clears_in_s": None if self.clear_at is None else max(0, round(self.clear_at - now)),
        }
