"""The OpenAI-compatible adapter against a local server that speaks the chat-completions
protocol (tool calls included), and its failures as AssistantError."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from router.assistant import (
    AssistantError,
    DialogContext,
    InMemoryAccountService,
    load_assistant_config,
)
from router.assistant.openai_compat import OpenAICompatibleAssistant
from tests.transition.conftest import CONFIG, T0


class ChatServer:
    """A minimal chat-completions server. ``mode`` picks the behaviour; requests are kept."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.mode = "tools"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if server.mode == "error":
                    return self._send(500, {"error": {"message": "model crashed"}})
                if server.mode == "garbage":
                    return self._send(200, {"unexpected": True})
                if server.mode == "loop":
                    return self._send(200, _tool_call("lookup_balance", {}))
                messages = body["messages"]
                if server.mode == "tools" and messages[-1]["role"] == "user":
                    return self._send(200, _tool_call("lookup_appointment",
                                                      {"reference": "AP-1001"}))
                tool_results = [m for m in messages if m["role"] == "tool"]
                content = {"reply": "Su cita AP-1001 es el lunes." if tool_results
                           else "Abrimos a las 8:30.",
                           "intent": "appointment_lookup" if tool_results else "office_hours",
                           "confidence": 0.93, "out_of_scope": 0.02, "give_up": False}
                return self._send(200, {"id": "x", "object": "chat.completion", "choices": [{
                    "index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(content)}}]})

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _tool_call(name, args):
    return {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}]}}]}


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def make(server, monkeypatch, **kw):
    cfg = load_assistant_config(CONFIG)
    cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"url": server.url})})
    monkeypatch.setenv("BATON_LLM_API_KEY", "sk-test-key")
    return OpenAICompatibleAssistant(cfg, InMemoryAccountService.demo(now=lambda: T0), **kw)


async def test_tool_call_round_trip(server, monkeypatch, layer):
    async with make(server, monkeypatch) as assistant:
        t = layer.accept("¿Cuándo es mi cita?", "es", pivot_text="When is my appointment?",
                         at=T0)
        r = await assistant.respond(t, DialogContext(case_id="c1", site="city-office",
                                                     resident="res-1"))
    assert r.assistant == "llm" and r.text == "Su cita AP-1001 es el lunes."
    assert r.intent == "appointment_lookup" and r.raw_confidence == 0.93 and r.language == "es"
    assert [a.tool for a in r.actions] == ["lookup_appointment"] and r.actions[0].ok
    assert r.actions[0].result[0]["reference"] == "AP-1001"
    first, second = server.requests
    assert first["tools"] and first["response_format"] == {"type": "json_object"}
    assert "translation: When is my appointment?" in first["messages"][-1]["content"]
    assert second["messages"][-1]["role"] == "tool"
    assert server.headers[0]["Authorization"] == "Bearer sk-test-key"
    assert len(r.state.history) == 2  # kept for the next turn


async def test_scorer_supplies_the_scores(server, monkeypatch, layer):
    from router.assistant import build_scorer

    server.mode = "plain"
    scorer = build_scorer(load_assistant_config(CONFIG))
    async with make(server, monkeypatch, scorer=scorer) as assistant:
        t = layer.accept("When do you open?", "en", pivot_text=None, at=T0)
        r = await assistant.respond(t, DialogContext(case_id="c1", site="city-office"))
    assert r.text == "Abrimos a las 8:30." and r.intent == "office_hours"
    assert r.raw_confidence == pytest.approx(scorer.score("When do you open?").raw_confidence)
    assert r.scores


@pytest.mark.parametrize("mode,message", [("error", "HTTP 500"),
                                          ("garbage", "chat-completions format"),
                                          ("loop", "kept calling tools")])
async def test_failures_are_assistant_errors(server, monkeypatch, layer, mode, message):
    server.mode = mode
    async with make(server, monkeypatch) as assistant:
        t = layer.accept("hello", "en", pivot_text=None, at=T0)
        with pytest.raises(AssistantError, match=message):
            await assistant.respond(t, DialogContext(case_id="c1", site="city-office",
                                                     resident="res-1"))


async def test_server_down_is_an_assistant_error(monkeypatch, layer):
    from tests.helpers import free_port

    cfg = load_assistant_config(CONFIG)
    cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(
        update={"url": f"http://127.0.0.1:{free_port()}/v1", "timeout_s": 2})})
    async with OpenAICompatibleAssistant(cfg) as assistant:
        t = layer.accept("hello", "en", pivot_text=None, at=T0)
        with pytest.raises(AssistantError, match="did not answer"):
            await assistant.respond(t, DialogContext(case_id="c1", site="city-office"))


async def test_gave_up_reply_after_failure(layer):
    from router.assistant import gave_up_reply

    t = layer.accept("hello", "en", pivot_text=None, at=T0)
    r = gave_up_reply("llm", t, DialogContext(case_id="c1", site="city-office"), "HTTP 500")
    assert r.gave_up and r.out_of_scope == 1.0 and r.state.fallbacks == 1


def test_url_is_required():
    cfg = load_assistant_config(CONFIG)
    with pytest.raises(ValueError, match="llm.url"):
        OpenAICompatibleAssistant(cfg)
