"""Real test speech, made on the machine: espeak-ng (English, Spanish) and pyopenjtalk-plus
(Japanese: espeak-ng's Japanese is too poor for Whisper to identify), at 16 kHz mono.

Used by the tests (cached per session in pytest's tmp dir) and by benchmarks/asr.py.
Spanish uses espeak-ng's Latin American voice with a male variant, slower (120 wpm) and with
word gaps, which Whisper understands much better than the default Castilian voice at 175 wpm.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EN = [
    "Good morning, I would like to renew my residence card.",
    "Where do I pay my city tax bill?",
    "My daughter needs a place at a daycare center near our home.",
    "I lost my health insurance card last week.",
    "Can I make an appointment for tomorrow afternoon?",
    "I moved to a new apartment and need to register my address.",
    "How long does it take to get a copy of my family register?",
    "The letter says I have to bring my passport and a photo.",
    "Is there someone here who speaks Spanish?",
    "I want to apply for the child allowance for my son.",
    "Thank you very much for your help today.",
    "Which floor is the welfare office on?",
]
ES = [
    "Buenos días, quiero renovar mi tarjeta de residencia.",
    "¿Dónde puedo pagar el impuesto municipal?",
    "Mi hija necesita una plaza en una guardería cerca de casa.",
    "Perdí mi tarjeta del seguro médico la semana pasada.",
    "¿Puedo pedir una cita para mañana por la tarde?",
    "Me mudé a un piso nuevo y tengo que registrar mi dirección.",
    "La carta dice que tengo que traer mi pasaporte y una foto.",
    "¿Hay alguien aquí que hable español?",
    "Quiero solicitar la ayuda por hijo para mi hijo.",
    "Muchas gracias por su ayuda hoy.",
    "¿En qué planta está la oficina de bienestar social?",
    "Necesito un certificado de empadronamiento para el banco.",
]
JA = [
    "おはようございます。在留カードを更新したいです。",
    "市民税はどこで払えますか。",
    "娘を家の近くの保育園に入れたいです。",
    "先週、保険証をなくしました。",
    "明日の午後に予約できますか。",
    "新しいアパートに引っ越したので、住所を登録したいです。",
    "パスポートと写真を持ってくるように手紙に書いてあります。",
    "ここに英語を話せる人はいますか。",
    "息子の児童手当を申請したいです。",
    "今日はどうもありがとうございました。",
    "福祉課は何階ですか。",
    "銀行のために住民票が必要です。",
]
SENTENCES = {"en": EN, "es": ES, "ja": JA}
ESPEAK = {"en": ["-v", "en-us"], "es": ["-v", "es-419+m3", "-s", "120", "-g", "6"]}


@dataclass(frozen=True, slots=True)
class Utterance:
    language: str
    text: str
    path: Path


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def have_openjtalk() -> bool:
    try:
        import pyopenjtalk  # noqa: F401
    except ImportError:
        return False
    return shutil.which("sox") is not None


def _sox_16k(src: Path, dst: Path) -> None:
    subprocess.run(["sox", "-V1", str(src), "-r", "16000", "-c", "1", "-b", "16", str(dst)],
                   check=True)


def synthesize(language: str, text: str, out: Path) -> Path:
    if out.exists():
        return out
    raw = out.with_suffix(".raw.wav")
    if language == "ja":
        import pyopenjtalk

        x, sr = pyopenjtalk.tts(text)
        x = x * (0.7 * 32767 / max(1.0, float(np.abs(x).max())))
        with wave.open(str(raw), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sr))
            w.writeframes(x.astype(np.int16).tobytes())
    else:
        subprocess.run(["espeak-ng", *ESPEAK[language], "-w", str(raw), text], check=True)
    _sox_16k(raw, out)
    raw.unlink()
    return out


def corpus(directory: Path, languages=("en", "es", "ja")) -> list[Utterance]:
    directory.mkdir(parents=True, exist_ok=True)
    return [Utterance(lang, text, synthesize(lang, text, directory / f"{lang}{i:02d}.wav"))
            for lang in languages for i, text in enumerate(SENTENCES[lang])]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768


def noise(kind: str, seconds: float, out: Path) -> Path:
    """sox noise (whitenoise, pinknoise, brownnoise) or silence ("silence")."""
    if not out.exists():
        synth = ["trim", "0", str(seconds)] if kind == "silence" else \
            ["synth", str(seconds), kind, "vol", "0.5"]
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), *synth],
                       check=True)
    return out


def speech_bounds(x: np.ndarray, threshold: float = 0.01) -> tuple[int, int]:
    """First and last sample louder than ``threshold``: where the TTS speech really is."""
    idx = np.flatnonzero(np.abs(x) > threshold)
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


def _words(text: str) -> list[str]:
    import re
    import unicodedata

    t = unicodedata.normalize("NFC", text.lower())
    return re.sub(r"[^\w\s']", " ", t).split()


def _distance(r: list, h: list) -> int:
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[:], i
        for j in range(1, len(h) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return d[len(h)]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edits, reference words), case and punctuation ignored (accents kept)."""
    r = _words(ref)
    return _distance(r, _words(hyp)), len(r)


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    r = [c for c in ref if c.isalnum()]
    return _distance(r, [c for c in hyp if c.isalnum()]), len(r)
