"""Builds a tiny, deterministic Argos package (.argosmodel) without torch or a download.

Real translation packages cannot be obtained on an offline build machine; this one exercises
the whole real path (zip layout, argostranslate's Package, sentencepiece, CTranslate2,
detokenizing) with a 1+1-layer Transformer whose answer is known: every sentence translates
to ``word``. The decoder's attention and feed-forward outputs are zero, so its state is the
(large) embedding of the previous token; the output projection maps <s> to ``word`` and
``word`` to </s>. Used by the tests and benchmarks/translate.py; also a smoke test for a
device's translation wiring (`python -m edge.translate.tiny OUT.argosmodel en es hola`).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CORPUS = [
    "Hello, how are you today?", "I need help with my residence card.",
    "Where is the tax office?", "Thank you very much.", "Buenos días, necesito ayuda.",
    "¿Dónde está la oficina?", "Muchas gracias por su ayuda.", "The appointment is tomorrow.",
    "My daughter needs a place at the daycare.", "Can you speak more slowly, please?",
]
D_MODEL, FFN, HEADS = 16, 32, 2


def _sentencepiece(words: list[str]) -> bytes:
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 3), model_writer=out, vocab_size=120,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        user_defined_symbols=words, minloglevel=2)
    return out.getvalue()


def _fill(spec, vocab: int, word_id: int, eos_id: int, bos_id: int) -> None:
    from ctranslate2.specs import model_spec

    def fill(layer, name, value):
        if value is not None:
            return
        scope = name
        leaf = scope.rsplit("/", 1)[-1]
        if leaf in ("gamma",):
            arr = np.ones(D_MODEL, np.float32)
        elif leaf == "beta":
            arr = np.zeros(D_MODEL, np.float32)
        elif "embeddings" in scope and leaf == "weight":
            arr = np.zeros((vocab, D_MODEL), np.float32)
            if scope.startswith("decoder"):
                arr[bos_id, 0] = 100.0
                arr[word_id, 1] = 100.0
        elif scope.startswith("decoder/projection"):
            arr = np.zeros((vocab, D_MODEL), np.float32) if leaf == "weight" \
                else np.zeros(vocab, np.float32)
            if leaf == "weight":
                arr[word_id, 0] = 10.0
                arr[eos_id, 1] = 10.0
        elif leaf == "weight" or leaf == "bias":
            arr = _linear_shape(scope, leaf)
        else:
            raise ValueError(f"tiny package: no rule for {scope}")
        setattr(layer, leaf, arr)

    model_spec.visit_spec(spec, fill)


def _linear_shape(scope: str, leaf: str) -> np.ndarray:
    # Fused projections: self-attention q|k|v is linear_0 (3d), cross-attention k|v linear_1.
    parts = scope.split("/")
    out_dim = D_MODEL
    if "ffn" in parts:
        out_dim = FFN if "linear_0" in parts else D_MODEL
        in_dim = D_MODEL if "linear_0" in parts else FFN
    else:
        in_dim = D_MODEL
        if "self_attention" in parts and "linear_0" in parts:
            out_dim = 3 * D_MODEL
        elif "attention" in parts and "linear_1" in parts:
            out_dim = 2 * D_MODEL
    return np.zeros((out_dim, in_dim) if leaf == "weight" else out_dim, np.float32)


def build_package(out: Path, src: str, dst: str, word: str, *, version: str = "1.0") -> Path:
    """Write ``out`` (an .argosmodel) translating src->dst; every sentence becomes ``word``."""
    import ctranslate2
    import sentencepiece as spm

    sp_bytes = _sentencepiece([word])
    sp = spm.SentencePieceProcessor(model_proto=sp_bytes)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    word_id = pieces.index(word)
    spec = ctranslate2.specs.TransformerSpec.from_config((1, 1), HEADS)
    _fill(spec, len(pieces), word_id, pieces.index("</s>"), pieces.index("<s>"))
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.validate()
    name = f"translate-{src}_{dst}-{version.replace('.', '_')}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / name
        (root / "model").mkdir(parents=True)
        spec.save(str(root / "model"))
        (root / "sentencepiece.model").write_bytes(sp_bytes)
        (root / "metadata.json").write_text(json.dumps({
            "package_version": version, "argos_version": "1.0", "from_code": src,
            "from_name": src, "to_code": dst, "to_name": dst, "type": "translate",
            "links": []}))
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(tmp).as_posix())
    return out


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print("usage: python -m edge.translate.tiny OUT.argosmodel SRC DST WORD")
        raise SystemExit(2)
    print(build_package(Path(sys.argv[1]), *sys.argv[2:]))
