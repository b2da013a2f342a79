"""Speech recognition settings (part of the edge config file, validated by pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VADConfig(_C):
    """Endpointing on Silero VAD, tuned for conversation (faster-whisper's default waits 2 s).

    An utterance starts after ``min_speech_ms`` of speech and ends after ``min_silence_ms``
    of silence; ``speech_pad_ms`` of audio is kept on both sides.
    """

    threshold: float = Field(default=0.5, gt=0, lt=1)
    neg_threshold: float | None = Field(default=None, gt=0, lt=1)
    min_speech_ms: int = Field(default=250, ge=32, le=2000)
    min_silence_ms: int = Field(default=500, ge=96, le=3000)
    speech_pad_ms: int = Field(default=200, ge=0, le=1000)
    max_utterance_s: float = Field(default=25.0, ge=2, le=29)

    @model_validator(mode="after")
    def _pad_within_silence(self):
        if self.speech_pad_ms >= self.min_silence_ms:
            raise ValueError("speech_pad_ms must be shorter than min_silence_ms")
        return self

    @property
    def negative(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None \
            else max(self.threshold - 0.15, 0.01)


class GuardConfig(_C):
    """The hallucination guard: what makes a decoded utterance count as nothing."""

    no_speech_threshold: float = Field(default=0.6, ge=0, le=1)
    log_prob_threshold: float = -1.0
    min_avg_logprob: float = -1.5
    compression_ratio_threshold: float = 2.4
    min_speech_ratio: float = Field(default=0.3, ge=0, le=1)
    known_phrases: bool = True


class ASRConfig(_C):
    model: str = "base"
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    cpu_threads: int = Field(default=2, ge=1, le=64)
    beam_size: int = Field(default=1, ge=1, le=10)
    # The final decode (once per utterance) searches with faster-whisper's default beam (5):
    # on the truncated window greedy decoding lost words the 30-s baseline keeps (quiet
    # benchmark 2026-12-02: WER 8.3 % vs 6.6 %; with 5, 6.6 %, p50 +45 ms). Partials stay greedy.
    final_beam_size: int = Field(default=5, ge=1, le=10)
    first_partial_ms: int = Field(default=300, ge=100)
    partial_interval_ms: int = Field(default=500, ge=100)
    # Shorter utterances keep the session's language unless Whisper is sure (LID on <1 s of
    # audio is unreliable).
    min_lid_s: float = Field(default=1.0, ge=0)
    sticky_language_prob: float = Field(default=0.95, ge=0, le=1)
    vad: VADConfig = Field(default_factory=VADConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
