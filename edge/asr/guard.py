"""The hallucination guard: pure rules over a decoded utterance.

Whisper invents text on noise and silence ("Thank you.", "Thanks for watching!", subtitle
credits). The VAD keeps most of that audio from being decoded at all; what gets through is
judged here on the decoder's own evidence (no-speech probability, mean log-probability,
compression ratio), the share of the utterance the VAD heard as speech, and a list of
phrases Whisper is known to produce from nothing (dropped only when the evidence is weak, so
a resident who says "thank you" is still heard).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from edge.asr.config import GuardConfig

KNOWN_PHRASES = {
    "thank you", "thank you very much", "thanks for watching", "thank you for watching",
    "thanks for watching and see you next time", "please subscribe", "subscribe",
    "bye", "you", "so", "okay", "oh", "hmm", "music", "applause", "laughter", "silence",
    "subtitles by the amara org community", "transcribed by", "www mooji org",
    "gracias", "muchas gracias", "gracias por ver", "gracias por ver el video",
    "subtitulos realizados por la comunidad de amara org", "suscribete",
    "obrigado", "obrigado por assistir", "legendas pela comunidade amara org",
    "ご視聴ありがとうございました", "ご視聴ありがとうございます", "ありがとうございました",
    "おやすみなさい", "チャンネル登録よろしくお願いします",
    "谢谢观看", "谢谢大家", "字幕由amara org社区提供", "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "продолжение следует", "субтитры сделал dimatorzok",
}


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = re.sub(r"[^\w\s]", " ", t)
    return " ".join(t.split())


_KNOWN = {normalize(p) for p in KNOWN_PHRASES}


@dataclass(slots=True, frozen=True)
class Evidence:
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    speech_ratio: float   # share of the utterance's VAD windows that were speech


def reject_reason(e: Evidence, cfg: GuardConfig) -> str | None:
    """Why this utterance is not a transcript, or None when it is one."""
    norm = normalize(e.text)
    if not norm:
        return "empty"
    if e.no_speech_prob > cfg.no_speech_threshold and e.avg_logprob < cfg.log_prob_threshold:
        return "no_speech"
    if e.avg_logprob < cfg.min_avg_logprob:
        return "low_logprob"
    if e.compression_ratio > cfg.compression_ratio_threshold:
        return "repetitive"
    if e.speech_ratio < cfg.min_speech_ratio:
        return "little_speech"
    if cfg.known_phrases and norm in _KNOWN:
        weak = e.no_speech_prob > 0.2 or e.avg_logprob < -0.6 or e.speech_ratio < 0.6
        if weak:
            return "known_hallucination"
    return None
