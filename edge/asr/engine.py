"""Whisper (faster-whisper, CTranslate2) for short utterances, in one worker thread.

Two decisions make finals fast on a 2-core CPU:

- The encoder sees the utterance plus one second of padding, not a 30-second window. Whisper
  pads every input to 30 s; on CTranslate2 the encoder accepts shorter inputs and its cost
  is about proportional (base int8, 2 cores: 0.8 s for 30 s, 0.1 s for 6 s). With timestamp
  tokens on, the decoder ends cleanly; if it does not (repetition, low log-probability) the
  utterance is decoded again the standard way (30-s window, temperature fallback).
- One encoder pass serves both language identification (restricted to the site's
  languages) and decoding.

All methods except ``submit`` and ``close`` block: they run in the engine's own thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.asr.config import ASRConfig
from edge.asr.errors import LanguageError
from edge.audio import SAMPLE_RATE, EmptyAudioError
from edge.models import ModelCorruptError, check_whisper_dir, whisper_dir

log = logging.getLogger("baton.edge.asr")

PAD_FRAMES = 100          # 1 s of mel frames after the utterance
FULL_FRAMES = 3000        # Whisper's 30-s window


@dataclass(slots=True)
class Hypothesis:
    text: str
    language: str
    language_prob: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    decode_ms: float
    fallback: bool = False
    duration: float = 0.0

    @property
    def confidence(self) -> float:
        """exp(mean token log-prob) x (1 - no-speech probability), in [0, 1]."""
        c = math.exp(min(self.avg_logprob, 0.0)) * (1.0 - self.no_speech_prob)
        return round(min(max(c, 0.0), 1.0), 4)


def whisper_code(language: str) -> str:
    return language.split("-")[0].lower()


class WhisperEngine:
    """A loaded Whisper model plus the thread that runs it. ``close()`` when done."""

    def __init__(self, model_dir: Path, cfg: ASRConfig):
        self.cfg = cfg
        self.model_dir = Path(model_dir)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="whisper")
        self.model: Any = None
        self._options: dict[tuple, Any] = {}
        self._tokenizers: dict[str, Any] = {}

    # --- loading ---------------------------------------------------------------------

    @classmethod
    def from_models_dir(cls, root: Path, cfg: ASRConfig) -> WhisperEngine:
        return cls(whisper_dir(root, cfg.model), cfg)

    def load(self) -> None:
        """Blocking: check the directory, load, warm up. Raises ModelError subclasses."""
        from faster_whisper import WhisperModel

        check_whisper_dir(self.model_dir)
        try:
            self.model = WhisperModel(str(self.model_dir), device="cpu",
                                      compute_type=self.cfg.compute_type,
                                      cpu_threads=self.cfg.cpu_threads, num_workers=1)
        except Exception as exc:  # noqa: BLE001 - CTranslate2/tokenizers raise many kinds
            raise ModelCorruptError(
                f"cannot load the Whisper model in {self.model_dir} ({exc}): it is damaged; "
                f"run `baton models install-defaults --dir {self.model_dir.parent.parent} "
                "--force`") from None
        self.decode(np.zeros(SAMPLE_RATE, np.float32), languages=None, language="en",
                    final=False)

    async def aload(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def check_languages(self, languages: Sequence[str]) -> None:
        if not self.multilingual and any(whisper_code(x) != "en" for x in languages):
            raise LanguageError(f"Whisper {self.model_dir.name} is English-only but the site "
                                f"speaks {', '.join(languages)}: use model base")
        supported = set(self.model.supported_languages)
        unknown = [x for x in languages if whisper_code(x) not in supported]
        if unknown:
            raise LanguageError(f"Whisper cannot recognise {', '.join(unknown)}: remove them "
                                "from the edge config's languages")

    # --- the thread ------------------------------------------------------------------

    def submit(self, fn: Callable, *args, **kwargs) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        return asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs), loop=loop)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    # --- decoding (worker thread) ------------------------------------------------------

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                            task="transcribe", language=language)
            self._tokenizers[language] = tok
        return tok

    def _opts(self, tokenizer, beam: int, temperatures: tuple[float, ...],
              max_new_tokens: int):
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        key = (beam, temperatures, max_new_tokens)
        opt = self._options.get(key)
        if opt is None:
            g = self.cfg.guard
            opt = TranscriptionOptions(
                beam_size=beam, best_of=1, patience=1, length_penalty=1,
                repetition_penalty=1, no_repeat_ngram_size=0,
                log_prob_threshold=g.log_prob_threshold,
                no_speech_threshold=g.no_speech_threshold,
                compression_ratio_threshold=g.compression_ratio_threshold,
                condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
                temperatures=list(temperatures), initial_prompt=None, prefix=None,
                suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
                without_timestamps=False, max_initial_timestamp=1.0, word_timestamps=False,
                prepend_punctuations="", append_punctuations="", multilingual=False,
                max_new_tokens=max_new_tokens, clip_timestamps=[0.0],
                hallucination_silence_threshold=None, hotwords=None)
            self._options[key] = opt
        return opt

    def _lid(self, encoder_output, languages: Sequence[str] | None) -> tuple[str, float]:
        probs = self.model.model.detect_language(encoder_output)[0]
        allowed = {whisper_code(x) for x in languages} if languages else None
        scores = {tok[2:-2]: p for tok, p in probs
                  if allowed is None or tok[2:-2] in allowed}
        if not scores:
            return (min(allowed) if allowed else "en"), 0.0
        best = max(scores, key=scores.get)
        return best, scores[best] / max(sum(scores.values()), 1e-9)

    def decode(self, audio: np.ndarray, *, languages: Sequence[str] | None,
               language: str | None = None, final: bool = True,
               sticky: str | None = None) -> Hypothesis:
        """Transcribe one utterance (16 kHz mono float32)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        if len(audio) == 0:
            raise EmptyAudioError("empty utterance: nothing to transcribe")
        t0 = time.perf_counter()
        m = self.model
        duration = len(audio) / SAMPLE_RATE
        features = m.feature_extractor(audio)
        n = min(features.shape[-1], FULL_FRAMES)
        frames = min(FULL_FRAMES, math.ceil((n + PAD_FRAMES) / 100.0) * 100)
        feats = np.zeros((features.shape[0], frames), np.float32)
        feats[:, :n] = features[:, :n]
        enc = m.model.encode(get_ctranslate2_storage(feats[None]), to_cpu=False)

        if language is not None:
            lang, lang_prob = whisper_code(language), 1.0
        elif not m.model.is_multilingual:
            lang, lang_prob = "en", 1.0
        else:
            lang, lang_prob = self._lid(enc, languages)
            if (sticky and duration < self.cfg.min_lid_s
                    and lang_prob < self.cfg.sticky_language_prob):
                lang = whisper_code(sticky)
        tok = self._tokenizer(lang)
        beam = self.cfg.final_beam_size if final else self.cfg.beam_size
        max_new = int(min(220, 24 + 30 * duration))
        opts = self._opts(tok, beam, (0.0,), max_new)
        prompt = m.get_prompt(tok, [], without_timestamps=False)
        result, avg, _temp, ratio = m.generate_with_fallback(enc, prompt, tok, opts)
        fallback = False
        g = self.cfg.guard
        # Repetition is how a truncated window fails; a low log-probability alone is left
        # to the guard (the 30-s window does not fix unclear speech, and costs 0.8 s).
        hit_limit = len(result.sequences_ids[0]) >= max_new - len(prompt) - 1
        bad = ratio > g.compression_ratio_threshold or hit_limit
        if final and bad:
            # The standard way: 30-s window and temperature fallback.
            from faster_whisper.transcribe import pad_or_trim

            fallback = True
            enc = m.model.encode(get_ctranslate2_storage(pad_or_trim(features)[None]),
                                 to_cpu=False)
            opts = self._opts(tok, max(beam, 1), (0.0, 0.2, 0.4, 0.6), max_new)
            result, avg, _temp, ratio = m.generate_with_fallback(enc, prompt, tok, opts)
        tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(tokens).strip()
        return Hypothesis(text=text, language=lang, language_prob=round(lang_prob, 4),
                          avg_logprob=float(avg), no_speech_prob=float(result.no_speech_prob),
                          compression_ratio=float(ratio),
                          decode_ms=(time.perf_counter() - t0) * 1000, fallback=fallback,
                          duration=duration)
