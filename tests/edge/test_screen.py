"""The resident screen's state machine (edge/screen/model.py) and its words
(config/edge/screen.yaml): pure, no browser."""

from __future__ import annotations

import pytest
import yaml

from common.config import ConfigError
from edge.screen.model import ScreenModel, Worker
from edge.screen.strings import DEFAULT_PATH, load_screen_config

LANGS = ["ja", "en", "es", "pt", "zh"]


@pytest.fixture
def model() -> ScreenModel:
    return ScreenModel(load_screen_config(None, LANGS), list(LANGS))


def test_a_visit_from_first_word_to_goodbye(model):
    assert model.snapshot(0)["state"] == "idle"
    model.choose_language("es")
    assert model.snapshot(0)["strings"]["welcome"] == "Bienvenido"
    model.resident_said("r1", "¿Dónde está la ventanilla de impuestos?", "es")
    model.case_opened("c-1")
    snap = model.snapshot(0)
    assert (snap["state"], snap["thinking"], snap["language"]) == ("ai", True, "es")
    model.ai_said("e1", "Los impuestos…", "es", original=("Taxes…", "en"), untranslated=False)
    model.resident_said("r2", "Quiero hablar con una persona.", "es")
    model.handoff(240, "residency_status")
    snap = model.snapshot(0)
    assert snap["state"] == "waiting" and snap["wait_s"] == 240
    assert snap["have_ready"] == ["Su tarjeta de residencia", "Su pasaporte"]
    model.case_state("c-1", "offered", None, 1)
    assert model.state == "waiting"
    model.case_state("c-1", "connected", Worker("mateo", "Mateo", "remote_worker"), 2)
    model.video_started()
    snap = model.snapshot(2)
    assert snap["state"] == "person" and snap["video"] and snap["camera_on"]
    assert snap["worker"] == {"name": "Mateo", "role": "Intérprete y guía"}
    model.case_state("c-1", "transferring", None, 3)
    snap = model.snapshot(3)
    assert snap["state"] == "transfer" and not snap["video"]  # never a frozen frame
    model.case_state("c-1", "connected", Worker("sofia", "Sofía", "agent"), 4)
    model.case_state("c-1", "resolved", None, 10)
    snap = model.snapshot(10)
    assert snap["state"] == "end" and snap["clears_in_s"] == 30
    model.more_time(25)  # the resident may always ask for more
    assert model.snapshot(25)["clears_in_s"] == 30
    model.rate(4, 26)
    model.case_state("c-1", "resolved", None, 27)  # a repeated update changes nothing
    assert model.rating == 4 and model.state == "end"
    assert not model.tick(29)
    assert model.tick(30.5)
    snap = model.snapshot(31)
    assert (snap["state"], snap["lines"], snap["worker"], snap["visit"]) == ("idle", [], None, 1)
    assert not snap["chosen"] and snap["language"] == "ja"


def test_the_next_resident_on_the_goodbye_screen_starts_clean(model):
    model.resident_said("r1", "税金の窓口はどこですか？", "ja")
    model.case_opened("c-1")
    model.case_state("c-1", "connected", Worker("aiko", "Aiko", "remote_worker"), 1)
    model.worker_said("t1", "かしこまりました。", "ja", original=("Of course.", "en"),
                      untranslated=False)
    model.case_state("c-1", "abandoned", None, 2)
    model.resident_said("r2", "Hello", "en")  # someone else walks up before it cleared
    snap = model.snapshot(3)
    assert [ln["text"] for ln in snap["lines"]] == ["Hello"]
    assert snap["worker"] is None and snap["state"] == "ai" and snap["visit"] == 1
    model.case_opened("c-2")
    model.case_state("c-1", "resolved", None, 4)  # the old case's late news: ignored
    assert model.state == "ai"


def test_emergency_overrides_until_the_visit_ends(model):
    model.resident_said("r1", "助けて", "ja")
    model.case_opened("c-1")
    model.emergency_notice("係員がすぐに参ります。", "119", "ja")
    assert model.state == "emergency"
    model.case_state("c-1", "connected", Worker("ken", "Ken", "agent"), 1)
    assert model.state == "emergency"
    model.emergency_cleared()  # staff have it in hand: back to the person
    assert model.state == "person" and model.emergency is None
    model.emergency_notice("係員がすぐに参ります。", "119", "ja")
    model.case_state("c-1", "resolved", None, 2)
    assert model.state == "end"
    model.clear()
    assert model.emergency is None and model.state == "idle"


def test_handed_back_returns_to_the_ai_without_video(model):
    model.resident_said("r1", "x", "en")
    model.case_opened("c-1")
    model.case_state("c-1", "connected", Worker("ken", "Ken", "agent"), 1)
    model.video_started()
    model.case_state("c-1", "handed_back", None, 2)
    snap = model.snapshot(2)
    assert (snap["state"], snap["video"], snap["worker"]) == ("ai", False, None)


def test_untranslated_lines_say_so(model):
    model.resident_said("r1", "x", "ja")
    model.worker_said("t1", "Bring form B-7.", "en", original=None, untranslated=True)
    assert model.snapshot(0)["lines"][-1] == {"id": "t1", "speaker": "worker",
                                              "text": "Bring form B-7.", "lang": "en",
                                              "untranslated": True}


def test_rating_only_at_the_end_and_in_range(model):
    with pytest.raises(ValueError):
        model.rate(5, 0)
    model.resident_said("r1", "x", "en")
    model.case_opened("c-1")
    model.case_state("c-1", "resolved", None, 1)
    with pytest.raises(ValueError):
        model.rate(6, 2)
    with pytest.raises(ValueError):
        model.choose_language("fr")


def test_every_site_language_needs_its_words(tmp_path):
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    del data["languages"]["zh"]
    p = tmp_path / "screen.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="zh"):
        load_screen_config(p, LANGS)
    del data["languages"]["es"]["thanks"]
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="thanks"):
        load_screen_config(p, ["ja", "es"])


async def test_page_video_offers_vp8_with_the_loopback_encoder():
    from edge.screen.video import LoopbackVp8Encoder, PageVideo
    from edge.webrtc.media import TestPatternTrack, ToneTrack

    video = PageVideo([TestPatternTrack(), ToneTrack()])
    try:
        sdp = await video.offer()
        assert "VP8/90000" in sdp and "H264" not in sdp and "opus/48000" in sdp
        sender = video.pc.getTransceivers()[0].sender
        enc = sender._RTCRtpSender__encoder
        assert isinstance(enc, LoopbackVp8Encoder)
        payloads, _ = enc.encode(await TestPatternTrack().recv())
        assert payloads  # a working VP8 encoder, denoiser off, faster speed
    finally:
        await video.aclose()


async def test_a_taken_port_is_a_clear_error():
    import socket

    from edge.screen.server import ScreenError, ScreenServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ScreenError, match=f"127.0.0.1:{port}.*--screen-port"):
            await ScreenServer(None, None, None, port=port).start()
