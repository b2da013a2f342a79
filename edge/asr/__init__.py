"""Streaming speech recognition on faster-whisper, offline, for the edge node."""

from edge.asr.config import ASRConfig, GuardConfig, VADConfig
from edge.asr.engine import Hypothesis, WhisperEngine
from edge.asr.errors import ASRError, LanguageError
from edge.asr.stream import ASREvent, Final, Partial, Rejected, StreamingRecognizer

__all__ = [
           "ASRConfig",
           "ASRError",
           "ASREvent",
           "Final",
           "GuardConfig",
           "Hypothesis",
           "LanguageError",
           "Partial",
           "Rejected",
           "StreamingRecognizer",
           "VADConfig",
           "WhisperEngine",
]
