"""Pure parts: endpointing, stable prefix, hallucination guard, audio frames."""

from __future__ import annotations

import numpy as np
import pytest

from edge.asr.config import GuardConfig, VADConfig
from edge.asr.guard import Evidence, reject_reason
from edge.asr.stable import StablePrefix
from edge.asr.vad import WINDOW, Endpointer
from edge.audio import (
    SAMPLE_RATE,
    AudioFormatError,
    AudioFrame,
    Resampler,
    check_frame,
    to_mono_float32,
)

W_MS = WINDOW * 1000 // SAMPLE_RATE  # 32 ms


def probs(*runs):
    """runs of (probability, milliseconds) -> per-window probabilities"""
    return np.concatenate([np.full(ms // W_MS, p, np.float32) for p, ms in runs])


def test_endpointer_start_pause_end():
    ep = Endpointer(VADConfig(min_speech_ms=256, min_silence_ms=512, speech_pad_ms=192))
    events = ep.push(probs((0.0, 320), (0.9, 1600), (0.05, 640)))
    kinds = [e.kind for e in events]
    assert kinds == ["start", "pause", "end"]
    start, pause, end = events
    assert start.sample == 320 * 16 - 192 * 16          # padded before the speech
    assert pause.sample == end.sample == (320 + 1600 + 192) * 16
    assert end.silence_at == (320 + 1600) * 16 and not end.forced


def test_endpointer_ignores_short_blips_and_short_pauses():
    ep = Endpointer(VADConfig(min_speech_ms=256, min_silence_ms=512, speech_pad_ms=192))
    assert ep.push(probs((0.9, 96), (0.0, 500), (0.9, 64), (0.0, 500))) == []
    events = ep.push(probs((0.9, 640), (0.1, 320), (0.9, 640), (0.1, 640)))
    assert [e.kind for e in events] == ["start", "pause", "resume", "pause", "end"]


def test_endpointer_cuts_long_speech_and_flushes():
    ep = Endpointer(VADConfig(max_utterance_s=3, min_silence_ms=400, speech_pad_ms=100))
    events = ep.push(probs((0.9, 7000)))
    ends = [e for e in events if e.kind == "end"]
    assert len(ends) == 2 and all(e.forced for e in ends)
    assert all(b.sample - a.sample <= 3 * SAMPLE_RATE + WINDOW for a, b in zip(events, events[1:])
               if a.kind == "start" and b.kind == "end")
    tail = ep.flush()
    assert [e.kind for e in tail] == ["end"]
    assert ep.flush() == []


def test_vad_config_rejects_padding_longer_than_silence():
    with pytest.raises(ValueError, match="speech_pad_ms"):
        VADConfig(speech_pad_ms=600, min_silence_ms=500)


def test_stable_prefix_only_grows():
    sp = StablePrefix()
    assert sp.update("I would", "en") == ("", "I would")
    assert sp.update("I would like", "en") == ("I would", "like")
    stable, _ = sp.update("I wood like to", "en")  # a rewrite does not un-commit
    assert stable == "I would"
    assert sp.update("I would like to renew", "en")[0].startswith("I would")


def test_stable_prefix_by_character_for_japanese():
    sp = StablePrefix()
    sp.update("在留カ", "ja")
    assert sp.update("在留カード", "ja") == ("在留カ", "ード")


@pytest.mark.parametrize("text,avg,nsp,cr,ratio,reason", [
    ("", -0.1, 0.0, 1.0, 1.0, "empty"),
    ("Hello there", -1.2, 0.8, 1.0, 1.0, "no_speech"),
    ("Hello there", -1.8, 0.1, 1.0, 1.0, "low_logprob"),
    ("la la la la la la la la la la la la", -0.2, 0.1, 3.0, 1.0, "repetitive"),
    ("Hello there", -0.2, 0.1, 1.2, 0.1, "little_speech"),
    ("Thanks for watching!", -0.7, 0.3, 1.1, 0.9, "known_hallucination"),
    ("ご視聴ありがとうございました", -0.4, 0.5, 1.0, 0.8, "known_hallucination"),
    ("Thank you.", -0.1, 0.01, 1.0, 0.95, None),   # a resident saying thanks is heard
    ("I need help with my tax.", -0.3, 0.05, 1.1, 0.9, None),
])
def test_guard(text, avg, nsp, cr, ratio, reason):
    assert reject_reason(Evidence(text, avg, nsp, cr, ratio), GuardConfig()) == reason


def test_frame_checks_give_clear_errors():
    check_frame(AudioFrame(np.zeros(320, np.float32), 0))
    with pytest.raises(AudioFormatError, match="8000 Hz.*16000 Hz.*resample"):
        check_frame(AudioFrame(np.zeros(160, np.float32), 0, sample_rate=8000))
    with pytest.raises(AudioFormatError, match="float32"):
        check_frame(AudioFrame(np.zeros(320, np.int16), 0))
    with pytest.raises(AudioFormatError, match="mono"):
        check_frame(AudioFrame(np.zeros((320, 2), np.float32), 0))


def test_resampler_and_mono_conversion():
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    out = Resampler().resample_array(stereo, 48000)
    out = np.concatenate([out, Resampler().flush()])
    assert abs(len(out) - 16000) < 200 and out.dtype == np.float32
    assert 0.6 < np.abs(out).max() <= 1.01
    pcm = to_mono_float32(np.array([16384, -16384], np.int16))
    assert pcm.tolist() == [0.5, -0.5]
    with pytest.raises(AudioFormatError, match="not a usable"):
        Resampler().resample_array(np.zeros(10, np.float32), 0)


def test_webrtc_track_source_resamples_48k_stereo_to_16k_mono():
    """aiortc delivers 20-ms av.AudioFrames (48 kHz, s16, stereo) and raises
    MediaStreamError when the track ends."""
    import asyncio

    import av

    from edge.audio_sources import TrackSource

    class MediaStreamError(Exception):
        pass

    class FakeTrack:
        kind = "audio"

        def __init__(self, n):
            self.n, self.pts = n, 0

        async def recv(self):
            if self.n == 0:
                raise MediaStreamError
            self.n -= 1
            t = (np.arange(960) + self.pts) / 48000
            tone = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None, :], format="s16",
                                               layout="stereo")
            frame.sample_rate, frame.pts = 48000, self.pts
            self.pts += 960
            return frame

        def stop(self):
            pass

    async def go():
        src = TrackSource(FakeTrack(50))  # 1 s
        frames = [f async for f in src.frames()]
        await src.aclose()
        return frames

    frames = asyncio.run(go())
    total = sum(len(f.samples) for f in frames)
    assert abs(total - SAMPLE_RATE) <= 320
    assert all(f.sample_rate == SAMPLE_RATE and f.samples.dtype == np.float32 for f in frames)
    assert [f.start for f in frames] == [i * 320 for i in range(len(frames))]
    level = float(np.abs(np.concatenate([f.samples for f in frames])).max())
    assert 0.2 < level < 0.36  # 8000/32768, both channels mixed at -3 dB


def test_missing_microphone_is_a_clear_error():
    import asyncio

    from edge.audio import AudioSourceError
    from edge.audio_sources import MicSource

    async def go():
        src = MicSource("baton-no-such-device")
        async for _ in src.frames():
            pass

    with pytest.raises(AudioSourceError, match="no microphone.*set audio.source"):
        asyncio.run(go())
