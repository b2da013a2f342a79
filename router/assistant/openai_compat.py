"""An assistant backed by any server that speaks the OpenAI chat-completions protocol
(vLLM, llama.cpp server, Ollama, a hosted API): ``POST {url}/chat/completions``.

The model answers with a JSON object (``response_format: json_object``):
``{"reply": str, "intent": str | null, "confidence": 0..1, "out_of_scope": 0..1,
"give_up": bool}`` and may call the account tools (OpenAI ``tools``/``tool_calls``); each call
becomes an action. When an ``IntentScorer`` is given, intent, raw confidence and
out-of-scope come from it (the same scale the calibrator was fitted on) and the model only
writes the reply. Transport and protocol failures raise AssistantError.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from typing import Any

import httpx

from protocol.models import ActionPayload
from router.assistant.accounts import AccountError, AccountService
from router.assistant.base import Assistant, AssistantError, AssistantReply, DialogContext
from router.assistant.config import AssistantFile
from router.assistant.intents import IntentScorer
from router.turns import AcceptedTurn

HISTORY_MESSAGES = 8

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_appointment",
        "description": "Upcoming appointments of the resident, or the one with a reference.",
        "parameters": {"type": "object", "properties": {
            "reference": {"type": "string", "description": "like AP-1234"}}}}},
    {"type": "function", "function": {
        "name": "reschedule_appointment",
        "description": "Move an appointment to a new start time (ISO 8601 with offset).",
        "parameters": {"type": "object", "required": ["reference", "start"], "properties": {
            "reference": {"type": "string"}, "start": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "lookup_balance",
        "description": "The resident's local tax balance: due, overdue, next due date.",
        "parameters": {"type": "object", "properties": {}}}},
]


class OpenAICompatibleAssistant(Assistant):
    def __init__(self, cfg: AssistantFile, accounts: AccountService | None = None, *,
                 name: str = "llm", scorer: IntentScorer | None = None,
                 api_key: str | None = None, client: httpx.AsyncClient | None = None):
        if not cfg.llm.url:
            raise ValueError("assistant.yaml llm.url is not set: give the base URL of an "
                             "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
        self.cfg = cfg
        self.name = name
        self.accounts = accounts
        self.scorer = scorer
        self.url = cfg.llm.url.rstrip("/") + "/chat/completions"
        key = api_key or (os.environ.get(cfg.llm.api_key_env) if cfg.llm.api_key_env else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=cfg.llm.timeout_s, headers=headers)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _system(self, ctx: DialogContext, turn: AcceptedTurn) -> str:
        facts = "; ".join(f"{k}: {v}" for k, v in self.cfg.facts_for(ctx.site).items())
        intents = ", ".join(self.cfg.intents)
        return (
            "You are the assistant of a city office. Answer briefly and only about the "
            f"office's services. Facts: {facts}. Known intents: {intents}. Reply in the "
            f"language with code {turn.language!r}. Answer with one JSON object: "
            '{"reply": string, "intent": one of the known intents or null, "confidence": '
            'number 0..1 that your answer is right, "out_of_scope": number 0..1, '
            '"give_up": boolean}. Use the tools for appointments and balances.')

    async def respond(self, turn: AcceptedTurn, ctx: DialogContext) -> AssistantReply:
        user = turn.text if turn.language == turn.pivot_language else \
            f"{turn.text}\n(translation: {turn.pivot_text})"
        messages: list[dict[str, Any]] = [{"role": "system", "content": self._system(ctx, turn)},
                                          *ctx.state.history,
                                          {"role": "user", "content": user}]
        actions: list[ActionPayload] = []
        for _ in range(self.cfg.llm.max_tool_rounds + 1):
            message = await self._complete(messages, tools=self.accounts is not None)
            calls = message.get("tool_calls") or []
            if not calls:
                break
            messages.append({"role": "assistant", "content": message.get("content") or "",
                             "tool_calls": calls})
            for call in calls:
                result = await self._run_tool(call, ctx, actions)
                messages.append({"role": "tool", "tool_call_id": str(call.get("id", "")),
                                 "content": json.dumps(result, ensure_ascii=False)})
        else:
            raise AssistantError(f"the model kept calling tools after "
                                 f"{self.cfg.llm.max_tool_rounds} rounds")
        answer = _parse_answer(message.get("content"))
        intent = answer.get("intent") if answer.get("intent") in self.cfg.intents else None
        conf = _unit(answer.get("confidence"), 0.5)
        oos = _unit(answer.get("out_of_scope"), 0.0 if intent else 1.0)
        scores: dict[str, float] = {}
        if self.scorer is not None:
            s = self.scorer.score(turn.pivot_text)
            intent, conf, oos, scores = s.intent, s.raw_confidence, s.out_of_scope, s.scores
        history = [*ctx.state.history, {"role": "user", "content": user},
                   {"role": "assistant", "content": str(answer["reply"])}][-HISTORY_MESSAGES:]
        state = ctx.state.model_copy(update={"history": history, "last_intent": intent})
        return AssistantReply(assistant=self.name, text=str(answer["reply"]),
                              language=turn.language, intent=intent, raw_confidence=conf,
                              out_of_scope=oos, actions=actions, scores=scores,
                              gave_up=bool(answer.get("give_up", False)), state=state)

    async def _complete(self, messages: list[dict], *, tools: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.llm.model, "messages": messages,
                                "temperature": self.cfg.llm.temperature,
                                "response_format": {"type": "json_object"}}
        if tools:
            body["tools"] = TOOLS
        try:
            resp = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise AssistantError(f"the assistant endpoint {self.url} did not answer "
                                 f"({type(exc).__name__}): check llm.url and that the server "
                                 "runs") from exc
        if resp.status_code != 200:
            raise AssistantError(f"the assistant endpoint {self.url} answered HTTP "
                                 f"{resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AssistantError(f"the assistant endpoint {self.url} did not answer in the "
                                 "chat-completions format") from exc

    async def _run_tool(self, call: dict, ctx: DialogContext,
                        actions: list[ActionPayload]) -> Any:
        fn = call.get("function") or {}
        tool = str(fn.get("name", ""))
        try:
            args = json.loads(fn.get("arguments") or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be an object")
        except ValueError as exc:
            result = {"error": "bad_arguments", "message": str(exc)}
            actions.append(ActionPayload(tool=tool or "unknown", args={}, result=result,
                                         ok=False))
            return result
        assert self.accounts is not None
        try:
            if tool == "lookup_appointment":
                ref = args.get("reference")
                found = await self.accounts.appointments(
                    reference=ref, resident=None if ref else ctx.resident)
                result: Any = [a.model_dump(mode="json") for a in found]
            elif tool == "reschedule_appointment":
                moved = await self.accounts.reschedule(
                    str(args["reference"]), datetime.fromisoformat(str(args["start"])))
                result = moved.model_dump(mode="json")
            elif tool == "lookup_balance":
                bal = await self.accounts.balance(ctx.resident) if ctx.resident else None
                result = bal.model_dump(mode="json") if bal else None
            else:
                result = {"error": "unknown_tool", "message": f"no tool {tool!r}"}
                actions.append(ActionPayload(tool=tool or "unknown", args=args, result=result,
                                             ok=False))
                return result
        except (AccountError, KeyError, ValueError) as exc:
            code = exc.reason if isinstance(exc, AccountError) else "bad_arguments"
            result = {"error": code, "message": str(exc)}
            actions.append(ActionPayload(tool=tool, args=args, result=result, ok=False))
            return result
        actions.append(ActionPayload(tool=tool, args=args, result=result, ok=True))
        return result


def _parse_answer(content: Any) -> dict[str, Any]:
    if not isinstance(content, str) or not content.strip():
        raise AssistantError("the model's answer is empty")
    text = content.strip()
    if text.startswith("```"):  # some servers wrap JSON in a code fence despite json mode
        text = text.strip("`").removeprefix("json").strip()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {"reply": content}  # plain text: a reply without the model's own scores
    if not isinstance(answer, dict) or not str(answer.get("reply", "")).strip():
        raise AssistantError("the model's answer has no 'reply'")
    return answer


def _unit(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else min(1.0, max(0.0, v))
