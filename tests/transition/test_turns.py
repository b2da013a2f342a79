"""Bad input: empty, unknown language, oversized turns are rejected with a typed error, and
the layer keeps working for the next turn."""

from __future__ import annotations

import pytest

from router.turns import MAX_TURN_CHARS, TurnRejected, accept_turn

LANGS = frozenset({"ja", "en", "es", "pt", "zh"})


def accept(text, language="en", pivot_text=None, **kw):
    return accept_turn(text, language, pivot_text=pivot_text, languages=LANGS, pivot="en",
                       at=100.0, **kw)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00"])
def test_empty_text_is_rejected(text):
    with pytest.raises(TurnRejected) as e:
        accept(text)
    assert e.value.reason == "empty_text"
    assert "empty" in str(e.value)


@pytest.mark.parametrize("language", ["xx", "fr", "EN", "", None, "e n", "english"])
def test_unknown_language_is_rejected(language):
    with pytest.raises(TurnRejected) as e:
        accept("hello", language)
    assert e.value.reason == "unknown_language"
    assert "languages.yaml" in str(e.value)


def test_oversized_text_is_rejected():
    with pytest.raises(TurnRejected) as e:
        accept("a" * (MAX_TURN_CHARS + 1))
    assert e.value.reason == "oversized_text"
    with pytest.raises(TurnRejected) as e:
        accept("b" * 10_000_000)  # huge input is refused before any work on it
    assert e.value.reason == "oversized_text"
    assert accept("a" * MAX_TURN_CHARS).text == "a" * MAX_TURN_CHARS


def test_non_pivot_turn_needs_its_translation():
    with pytest.raises(TurnRejected) as e:
        accept("こんにちは", "ja")
    assert e.value.reason == "missing_translation"
    with pytest.raises(TurnRejected) as e:
        accept("こんにちは", "ja", pivot_text="   ")
    assert e.value.reason == "missing_translation"
    with pytest.raises(TurnRejected) as e:
        accept("こんにちは", "ja", pivot_text="x" * 9000)
    assert e.value.reason == "oversized_text"


def test_non_string_text_is_rejected():
    with pytest.raises(TurnRejected) as e:
        accept(12345)  # type: ignore[arg-type]
    assert e.value.reason == "invalid_text"


def test_accepted_turn_is_normalized():
    t = accept("  ｈｅｌｌｏ  ")  # NFC keeps full-width; strip only
    assert t.text == "ｈｅｌｌｏ" and t.pivot_text == t.text and t.pivot_language == "en"
    t = accept("¿Dónde está?", "es", pivot_text=" Where is it? ")
    assert t.pivot_text == "Where is it?" and t.language == "es"


def test_a_rejected_turn_breaks_nothing(layer):
    """Rejections from the layer itself, then a good turn goes through the whole chain."""
    from router.assistant.base import AssistantReply
    from router.escalation import DecisionContext

    state = layer.new_state(0.0)
    for bad in [("", "en", None), ("hola", "xx", "hello"), ("x" * 5000, "en", None)]:
        with pytest.raises(TurnRejected):
            layer.accept(bad[0], bad[1], pivot_text=bad[2], at=1.0)
    turn = layer.accept("What time do you open?", "en", pivot_text=None, at=2.0)
    reply = AssistantReply(assistant="builtin", text="9:00", language="en",
                           intent="office_hours", raw_confidence=0.95, out_of_scope=0.02)
    result = layer.assess(turn, reply, state, DecisionContext(site="city-office"))
    assert result.decision.decision.value == "continue_ai"
