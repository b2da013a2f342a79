"""The built-in assistant of a city office or branch, answering from config/assistant.yaml.

Per turn: score the intent on the pivot text, extract entities, then answer — from the
intent's text (or a topic of it), or through a tool of the account service (appointment
lookup and reschedule, balance). A reschedule without a date asks for one and remembers
what it asked (``DialogState.pending``). Turns not understood ``give_up_after`` times in a
row make the assistant give up.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from protocol.models import ActionPayload
from router.assistant.accounts import AccountError, AccountService, Appointment
from router.assistant.base import Assistant, AssistantReply, DialogContext, DialogState
from router.assistant.config import AssistantFile, IntentConfig
from router.assistant.entities import extract
from router.assistant.intents import EmbeddingIntentScorer, IntentScorer
from router.embeddings import VectorCache
from router.turns import AcceptedTurn

# A turn that only supplies what the assistant asked for (e.g. "Tuesday at 10") is a slot
# fill: the assistant understood it, whatever the intent scorer thinks of it.
SLOT_FILL_CONFIDENCE = 0.9


class BuiltinAssistant(Assistant):
    def __init__(self, cfg: AssistantFile, accounts: AccountService, *,
                 site_timezones: dict[str, str] | None = None,
                 scorer: IntentScorer | EmbeddingIntentScorer | None = None,
                 vectors: VectorCache | None = None, cache_dir: str | None = None):
        """``vectors``: the transition layer's VectorCache, so a turn is embedded once (the
        router warms it in a worker thread before ``respond``); None loads the default
        model when ``scoring.method`` is embedding."""
        self.cfg = cfg
        self.name = cfg.name
        self.accounts = accounts
        self.site_timezones = site_timezones or {}
        self.scorer = scorer or build_scorer(cfg, vectors, cache_dir)

    async def respond(self, turn: AcceptedTurn, ctx: DialogContext) -> AssistantReply:
        tz = self.site_timezones.get(ctx.site, "UTC")
        score = self.scorer.score(turn.pivot_text, original=turn.text)
        entities = extract(turn.text, turn.pivot_text, now=turn.at, tz=tz)
        state = ctx.state
        intent, conf, oos = score.intent, score.raw_confidence, score.out_of_scope
        pending = state.pending.get("intent")
        if pending and ("date" in entities or "time" in entities) \
                and (intent == pending or oos >= self.cfg.scoring.oos_threshold
                     or conf < 0.5):
            intent, conf, oos = pending, max(conf, SLOT_FILL_CONFIDENCE), min(oos, 0.1)
        base = {"assistant": self.name, "intent": intent, "raw_confidence": conf,
                "out_of_scope": oos, "entities": entities, "scores": score.scores}
        sc = self.cfg.scoring
        if intent is None or oos >= sc.oos_threshold or conf < sc.min_confidence:
            fallbacks = state.fallbacks + 1
            gave_up = fallbacks >= sc.give_up_after
            return AssistantReply(
                **{**base, "intent": None}, text=self.cfg.give_up if gave_up else
                self.cfg.fallback, language=self.cfg.pivot, gave_up=gave_up,
                state=DialogState(fallbacks=fallbacks, last_intent=state.last_intent))
        icfg = self.cfg.intents[intent]
        slots = self.cfg.facts_for(ctx.site)
        actions: list[ActionPayload] = []
        new_state = DialogState(last_intent=intent)
        text_key = "answer"
        if icfg.tool is not None:
            try:
                text_key, extra, new_state = await self._tool(icfg, intent, ctx, entities, tz,
                                                              actions, state)
            except AccountError as exc:  # recorded as a failed action by _call
                text_key, extra = "failed", {"reason": str(exc)}
            slots.update(extra)
        if text_key == "answer" and icfg.topics:
            low = turn.pivot_text.lower()
            topic = next((t for t in icfg.topics if any(k in low for k in t.keywords)), None)
            if topic is not None:
                return self._reply(base, topic.answer, None, slots, turn, actions, new_state)
        template = getattr(icfg, text_key)
        localized = icfg.answers.get(turn.language) if text_key == "answer" else None
        return self._reply(base, template, localized, slots, turn, actions, new_state)

    def _reply(self, base: dict, template: str, localized: str | None, slots: dict,
               turn: AcceptedTurn, actions: list[ActionPayload],
               state: DialogState) -> AssistantReply:
        text, language = (localized, turn.language) if localized else (template, self.cfg.pivot)
        return AssistantReply(**base, text=_fill(text, slots), language=language,
                              actions=actions, state=state)

    async def _tool(self, icfg: IntentConfig, intent: str, ctx: DialogContext,
                    entities: dict[str, str], tz: str, actions: list[ActionPayload],
                    state: DialogState) -> tuple[str, dict[str, Any], DialogState]:
        """Run the intent's tool. Returns (which answer to use, slots, next state)."""
        done = DialogState(last_intent=intent)
        if icfg.tool == "lookup_balance":
            if not ctx.resident:
                return "not_found", {}, done
            bal = await self._call(actions, "lookup_balance", {"resident": ctx.resident},
                                   lambda: self.accounts.balance(ctx.resident))
            if bal is None:
                return "not_found", {}, done
            return "answer", {"due": f"{bal.due:,}", "overdue": f"{bal.overdue:,}",
                              "next_due_date": bal.next_due_date.isoformat()}, done
        reference = entities.get("reference") or state.pending.get("reference")
        args = {"reference": reference} if reference else {"resident": ctx.resident}
        if not reference and not ctx.resident:
            return "not_found", {}, done
        found = await self._call(actions, "lookup_appointment", args,
                                 lambda: self.accounts.appointments(**args))
        if not found:
            return "not_found", {}, done
        appt: Appointment = found[0]
        slots = _appointment_slots(appt, tz)
        if icfg.tool == "lookup_appointment":
            return "answer", slots, done
        when = _when(entities, state.pending, tz)
        if when is None:
            pending = {"intent": intent, "reference": appt.reference}
            if "date" in entities:
                pending["date"] = entities["date"]
            if "time" in entities:
                pending["time"] = entities["time"]
            return "ask", slots, DialogState(last_intent=intent, pending=pending)
        try:
            moved = await self._call(actions, "reschedule_appointment",
                                     {"reference": appt.reference, "start": when.isoformat()},
                                     lambda: self.accounts.reschedule(appt.reference, when))
        except AccountError as exc:
            return "failed", {**slots, "reason": str(exc)}, DialogState(
                last_intent=intent, pending={"intent": intent, "reference": appt.reference})
        return "answer", _appointment_slots(moved, tz), done

    @staticmethod
    async def _call(actions: list[ActionPayload], tool: str, args: dict,
                    call: Callable[[], Any]) -> Any:
        """Run one tool call and record it as an action (arguments, result, ok)."""
        try:
            result = await call()
        except AccountError as exc:
            actions.append(ActionPayload(tool=tool, args=args, ok=False,
                                         result={"error": exc.reason, "message": str(exc)}))
            raise
        shown: Any = result
        if isinstance(result, list):
            shown = [r.model_dump(mode="json") for r in result]
        elif hasattr(result, "model_dump"):
            shown = result.model_dump(mode="json")
        actions.append(ActionPayload(tool=tool, args=args, result=shown, ok=True))
        return result


def build_scorer(cfg: AssistantFile, vectors: VectorCache | None = None,
                 cache_dir: str | None = None) -> IntentScorer | EmbeddingIntentScorer:
    s = cfg.scoring
    if s.method == "embedding":
        if vectors is None:
            from router.embeddings import load_encoder

            vectors = VectorCache(load_encoder())
        return EmbeddingIntentScorer({name: i.examples for name, i in cfg.intents.items()},
                                     cfg.out_of_scope_examples, vectors=vectors,
                                     temperature=s.embedding_temperature, cache_dir=cache_dir)
    return IntentScorer({name: i.examples for name, i in cfg.intents.items()},
                        cfg.out_of_scope_examples, temperature=s.temperature,
                        word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams)


def _appointment_slots(appt: Appointment, tz: str) -> dict[str, str]:
    local = appt.start.astimezone(ZoneInfo(tz))
    return {"reference": appt.reference, "service": appt.service, "counter": appt.counter,
            "date": local.strftime("%A %Y-%m-%d"), "time": local.strftime("%H:%M")}


def _when(entities: dict[str, str], pending: dict[str, Any], tz: str) -> datetime | None:
    day = entities.get("date") or pending.get("date")
    at = entities.get("time") or pending.get("time")
    if not day or not at:
        return None
    hh, mm = (int(x) for x in at.split(":"))
    return datetime.combine(datetime.fromisoformat(day).date(), time(hh, mm), ZoneInfo(tz))


class _Slots(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, slots: dict[str, Any]) -> str:
    """str.format with unknown placeholders left as they are (a config typo shows, never
    crashes a reply)."""
    try:
        return string.Formatter().vformat(template, (), _Slots(slots))
    except (ValueError, IndexError):
        return template
