"""Train the category head that routecore ships (routecore/data/category-head.npz).

    python scripts/train_category_head.py --mirrors DIR [--holdout 0.1]

DIR holds bare git snapshots (owner+name/repo) of these public repositories;
each gives prompts with a task label, mapped to the built-in categories:

- openai/grade-school-math (MIT): GSM8K test split questions -> math;
- zifanwangsteven/assignment5-alignment (the MATH dataset, MIT): MATH test
  split problems (data/MATH/validation.jsonl) -> math;
- suzgunmirac/BIG-Bench-Hard (MIT): BBH task inputs -> reasoning, or math for
  arithmetic and counting;
- deepmind/AQuA (Apache-2.0): AQuA-RAT dev and test questions -> math;
- teknium1/GPTeacher (MIT): Codegen instructions (+ input) -> code;
- lm-sys/FastChat (Apache-2.0): MT-bench and Vicuna-bench questions, by their
  own categories -> several;
- brmson/dataset-factoid-webquestions (CC-BY-4.0): WebQuestions questions -> qa;
- bigscience-workshop/promptsource (Apache-2.0): prompt templates of labelled
  datasets, rendered with filler text -> summarization, extraction, qa,
  creative, chat;
- facebookresearch/LASER (Tatoeba, CC-BY-2.0-FR): sentence pairs inside
  translation requests -> translation;
- the built-in categories' example prompts in routecore's defaults.yaml.

The promptsource templates carry the instruction wording of each task; their
data fields are filled with English Tatoeba sentences, so the head learns the
ask, not the content. The translation requests wrap Tatoeba sentences in a few
phrasings written here (a documented, templated source).

Never trained on the shared evaluation prompts: any training text equal (after
whitespace and case folding) to a prompt of llmrouter.train.jsonl is dropped
(the file is read only to exclude, and the count is reported), and none of the
evaluation tasks' own datasets is used (no NQ, TriviaQA, MBPP, HumanEval,
MGSM or logic-grid puzzles); for GSM8K and MATH, whose train splits hold the
evaluation prompts, only their test splits are used. The data itself is not committed.

Model: multinomial logistic regression (L-BFGS, L2), classes weighted by a
traffic prior (PRIOR), features as routing.category_head defines them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routecore.config import load_config  # noqa: E402
from routecore.learned.data import default_data_dir  # noqa: E402
from routecore.routing.category_head import HEAD_FILE, CategoryHead, ask_window  # noqa: E402
from routecore.routing.embedding import StaticEmbedder  # noqa: E402
from routecore.routing.features import FeatureExtractor  # noqa: E402

HASH_DIM = 1024
# Class weights: the share of each category in a general assistant's traffic (a
# prior, not fitted to any evaluation set); each row weighs prior / rows of its class.
PRIOR = {"code": 0.22, "qa": 0.2, "creative": 0.1, "chat": 0.1, "math": 0.1, "reasoning": 0.08,
         "summarization": 0.06, "extraction": 0.07, "translation": 0.07}
BBH = {
    "logical_deduction_three_objects": "reasoning", "logical_deduction_five_objects": "reasoning",
    "logical_deduction_seven_objects": "reasoning", "web_of_lies": "reasoning",
    "navigate": "reasoning", "tracking_shuffled_objects_three_objects": "reasoning",
    "tracking_shuffled_objects_five_objects": "reasoning", "temporal_sequences": "reasoning",
    "date_understanding": "reasoning", "penguins_in_a_table": "reasoning",
    "causal_judgement": "reasoning", "formal_fallacies": "reasoning",
    "boolean_expressions": "reasoning", "reasoning_about_colored_objects": "reasoning",
    "multistep_arithmetic_two": "math", "object_counting": "math",
}
MT_BENCH = {"writing": "creative", "roleplay": "creative", "reasoning": "reasoning", "math": "math",
            "coding": "code", "extraction": "extraction", "stem": "qa", "humanities": "qa"}
VICUNA = {"generic": "chat", "knowledge": "qa", "roleplay": "creative", "common-sense": "reasoning",
          "fermi": "reasoning", "counterfactual": "reasoning", "coding": "code", "math": "math",
          "writing": "creative"}
PROMPTSOURCE = {
    "summarization": ["xsum", "cnn_dailymail/3.0.0", "samsum", "gigaword", "multi_news", "billsum",
                      "aeslc", "scitldr/Abstract", "scientific_papers/arxiv", "multi_x_science_sum",
                      "sent_comp"],
    "extraction": ["imdb", "yelp_polarity", "amazon_polarity", "rotten_tomatoes", "app_reviews",
                   "tweet_eval/sentiment", "tweet_eval/emotion", "tweet_eval/hate", "emotion",
                   "ag_news", "dbpedia_14", "yahoo_answers_topics", "trec", "banking77",
                   "snips_built_in_intents", "ncbi_disease", "species_800", "acronym_identification",
                   "docred", "sem_eval_2010_task_8", "financial_phrasebank/sentences_allagree",
                   "sms_spam", "hate_speech18", "poem_sentiment"],
    "qa": ["web_questions", "freebase_qa", "wiki_qa", "yahoo_answers_qa", "sciq"],
    "creative": ["common_gen", "story_cloze/2016"],
    "chat": ["blended_skill_talk", "conv_ai_3", "meta_woz/dialogues", "craigslist_bargains"],
}
LANGS = {"fra": "French", "deu": "German", "spa": "Spanish", "ita": "Italian", "por": "Portuguese",
         "nld": "Dutch", "rus": "Russian", "pol": "Polish", "tur": "Turkish", "jpn": "Japanese",
         "cmn": "Chinese", "kor": "Korean", "ara": "Arabic", "swe": "Swedish", "ukr": "Ukrainian"}
# Translation requests around Tatoeba pairs: {src} foreign text, {en} its English, {lang} its name.
TO_EN = ["Translate to English: {src}", "What does \"{src}\" mean in English?", "{src}\n\nEnglish please.",
         "Can you translate this for me? {src}", "{src} -- what does this say?",
         "Please render the following in English:\n{src}", "Meaning of '{src}'?",
         "I got this message: \"{src}\". What is it saying?"]
FROM_EN = ["Translate into {lang}: {en}", "How do you say \"{en}\" in {lang}?",
           "Put this sentence in {lang}: {en}", "What's the {lang} for '{en}'?",
           "Write \"{en}\" in {lang}.", "I need this in {lang}: {en}",
           "Convert the following English text to {lang}:\n{en}", "{lang} version of: {en}"]


def _gitdir(repo: Path) -> Path:
    return repo if (repo / "HEAD").exists() else repo / ".git"


def git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(_gitdir(repo)), "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def git_ls(repo: Path, prefix: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(_gitdir(repo)), "ls-tree", "-r", "--name-only", "HEAD",
                          prefix], check=True, capture_output=True, text=True).stdout
    return out.split()


def load_sources(m: Path, rng: random.Random) -> list[tuple[str, str, str]]:
    """(text, category, source) rows from every source."""
    rows: list[tuple[str, str, str]] = []
    # GSM8K's test split and MATH's test split: the evaluation prompts came from
    # their train splits (checked: 383 and 376 exact matches there, none here).
    gsm = m / "openai+grade-school-math" / "repo"
    for line in git_show(gsm, "grade_school_math/data/test.jsonl").splitlines():
        rows.append((json.loads(line)["question"], "math", "gsm8k-test"))
    hm = m / "zifanwangsteven+assignment5-alignment" / "repo"
    for line in git_show(hm, "data/MATH/validation.jsonl").splitlines():
        rows.append((json.loads(line)["problem"], "math", "math-test"))
    bbh = m / "suzgunmirac+BIG-Bench-Hard" / "repo"
    for task, cat in BBH.items():
        for ex in json.loads(git_show(bbh, f"bbh/{task}.json"))["examples"]:
            rows.append((ex["input"], cat, f"bbh/{task}"))
            if task == "multistep_arithmetic_two":  # also as a plain question
                rows.append((f"What is {ex['input'].rstrip(' =')}?", cat, f"bbh/{task}/asked"))
    gpt = m / "teknium1+GPTeacher" / "repo"
    for ex in json.loads(git_show(gpt, "Codegen/codegen-instruct.json")):
        text = ex["instruction"] + (("\n" + ex["input"]) if ex.get("input") else "")
        rows.append((text, "code", "gpteacher-codegen"))
    fc = m / "lm-sys+FastChat" / "repo"
    for path, mapping, name in (("fastchat/llm_judge/data/mt_bench/question.jsonl", MT_BENCH, "mt-bench"),
                                ("fastchat/llm_judge/data/vicuna_bench/question.jsonl", VICUNA, "vicuna")):
        for line in git_show(fc, path).splitlines():
            q = json.loads(line)
            if q["category"] in mapping:
                rows.append((q["turns"][0], mapping[q["category"]], name))
    aqua = m / "deepmind+AQuA" / "repo"
    for split in ("dev.json", "test.json"):
        for line in git_show(aqua, split).splitlines():
            rows.append((json.loads(line)["question"], "math", "aqua"))
    wq = m / "brmson+dataset-factoid-webquestions" / "repo"
    questions = [q["qText"] for split in ("trainmodel", "val", "devtest", "test")
                 for q in json.loads(git_show(wq, f"main/{split}.json"))]
    rows.extend((q, "qa", "webquestions") for q in questions)
    laser = m / "facebookresearch+LASER" / "repo"
    english: list[str] = []
    for code, lang in LANGS.items():
        src = git_show(laser, f"data/tatoeba/v1/tatoeba.{code}-eng.{code}").splitlines()
        eng = git_show(laser, f"data/tatoeba/v1/tatoeba.{code}-eng.eng").splitlines()
        english.extend(eng)
        # Mostly foreign text to render in English: an English sentence inside a
        # request to translate it would teach that short English lines are translation.
        for s, e in list(zip(src, eng, strict=False))[:100]:
            if rng.random() < 0.75:
                text = rng.choice(TO_EN).format(src=s)
            else:
                text = rng.choice(FROM_EN).format(en=e, lang=lang)
            rows.append((text, "translation", "tatoeba"))
    # The built-in categories' own example prompts (defaults.yaml), a few times each.
    for name, cat in load_config(None).categories.items():
        rows.extend((ex, name, f"exemplars/{name}/{i % 5}") for ex in cat.exemplars for i in range(5))
    rows.extend(promptsource_rows(m / "bigscience-workshop+promptsource" / "repo", english, questions,
                                  rng))
    return rows


_JINJA_BLOCK = re.compile(r"\{%.*?%\}", re.S)
_JINJA_VAR = re.compile(r"\{\{.*?\}\}", re.S)


def promptsource_rows(repo: Path, english: list[str], questions: list[str], rng: random.Random,
                      per_template: int = 6) -> list[tuple[str, str, str]]:
    """Each template's prompt side (before '|||'), data fields filled with English text
    (a qa template's question field with a WebQuestions question)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: _mapping(loader, node))
    rows = []
    for cat, datasets in PROMPTSOURCE.items():
        for ds in datasets:
            doc = yaml.load(git_show(repo, f"promptsource/templates/{ds}/templates.yaml"), Loader=_Loader)
            for t in doc["templates"].values():
                prompt = t["jinja"].split("|||")[0]
                for _ in range(per_template):
                    def fill(mt: re.Match[str], cat: str = cat) -> str:
                        if cat == "qa" and "question" in mt.group(0):
                            return rng.choice(questions)
                        n = rng.choice((1, 1, 2, 3, 6)) if "choice" not in mt.group(0) else 1
                        return " ".join(rng.choice(english) for _ in range(n))
                    text = _JINJA_VAR.sub(fill, _JINJA_BLOCK.sub("", prompt)).strip()
                    if text:
                        rows.append((text, cat, f"promptsource/{ds}"))
    return rows


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def featurize(texts: list[str], emb: StaticEmbedder, fx: FeatureExtractor) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray]:
    e = np.stack([emb.embed(ask_window(t)) for t in texts])
    hv, sc = zip(*(fx.extract(t) for t in texts), strict=True)
    return e, np.stack(hv), np.stack(sc)


def fit(x: np.ndarray, y: np.ndarray, n_cls: int, weights: np.ndarray, l2: float) -> tuple[np.ndarray,
                                                                                          np.ndarray]:
    n, d = x.shape
    onehot = np.zeros((n, n_cls))
    onehot[np.arange(n), y] = 1.0
    wsum = weights.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: n_cls * d].reshape(n_cls, d)
        b = theta[n_cls * d:]
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        ll = -(weights * np.log(np.maximum((p * onehot).sum(axis=1), 1e-300))).sum() / wsum
        g = (p - onehot) * weights[:, None] / wsum
        gw = g.T @ x + l2 * w
        return ll + 0.5 * l2 * float((w * w).sum()), np.concatenate([gw.ravel(), g.sum(axis=0)])

    theta0 = np.zeros(n_cls * d + n_cls)
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x[: n_cls * d].reshape(n_cls, d), res.x[n_cls * d:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mirrors", required=True, type=Path)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--max-per-source", type=int, default=2500)
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "routecore" / "data" / HEAD_FILE)
    args = ap.parse_args()
    rng = random.Random(20261130)
    categories = tuple(load_config(None).categories)
    rows = load_sources(args.mirrors, rng)
    # Exclude anything equal to an evaluation prompt (read only for this).
    evald = default_data_dir() / "llmrouter.train.jsonl"
    banned = set()
    if evald.exists():
        banned = {_norm(json.loads(line)["prompt"]) for line in evald.open()}
    dropped = dict(Counter(r[2] for r in rows if _norm(r[0]) in banned))
    rows = [r for r in rows if _norm(r[0]) not in banned and r[1] in categories]
    by_source: dict[str, list[tuple[str, str, str]]] = {}
    for r in rows:
        by_source.setdefault(r[2], []).append(r)
    rows = []
    for src_rows in by_source.values():
        rng.shuffle(src_rows)
        rows.extend(src_rows[: args.max_per_source])
    rng.shuffle(rows)
    texts = [r[0] for r in rows]
    y = np.array([categories.index(r[1]) for r in rows])
    print(f"{len(rows)} rows (dropped as equal to an evaluation prompt: {dropped}); per category:",
          dict(Counter(r[1] for r in rows)))
    emb = StaticEmbedder.shipped()
    fx = FeatureExtractor(HASH_DIM)
    e, hv, sc = featurize(texts, emb, fx)
    mean = sc.mean(axis=0).astype(np.float32)
    scale = np.maximum(sc.std(axis=0), 1e-3).astype(np.float32)
    head0 = CategoryHead(categories, np.zeros((1, 1), np.float32), np.zeros(1, np.float32),
                         e.shape[1], HASH_DIM, mean, scale, {})
    x = head0.features(e, hv, sc).astype(np.float64)
    counts = np.bincount(y, minlength=len(categories)).astype(np.float64)
    prior = np.array([PRIOR.get(c, 1.0 / len(categories)) for c in categories])
    weights = (len(y) * prior / np.maximum(counts, 1))[y]
    n_hold = int(len(y) * args.holdout)
    acc_hold = None
    if n_hold:
        w, b = fit(x[n_hold:], y[n_hold:], len(categories), weights[n_hold:], args.l2)
        acc_hold = float(((x[:n_hold] @ w.T + b).argmax(axis=1) == y[:n_hold]).mean())
        print(f"held-out accuracy ({n_hold} rows): {acc_hold:.4f}")
    w, b = fit(x, y, len(categories), weights, args.l2)
    train_acc = float(((x @ w.T + b).argmax(axis=1) == y).mean())
    sources = sorted({r[2].split("/")[0] for r in rows})
    meta = {"sources": sources, "rows": len(rows), "per_category": dict(Counter(r[1] for r in rows)),
            "holdout_accuracy": acc_hold, "train_accuracy": train_acc, "l2": args.l2,
            "class_prior": PRIOR,
            "licences": {"gsm8k-test": "MIT", "math-test": "MIT", "bbh": "MIT", "gpteacher-codegen": "MIT",
                         "mt-bench": "Apache-2.0", "vicuna": "Apache-2.0", "promptsource": "Apache-2.0",
                         "webquestions": "CC-BY-4.0", "tatoeba": "CC-BY-2.0-FR",
                         "aqua": "Apache-2.0"},
            "dropped_equal_to_eval_prompts": dropped}
    head = CategoryHead(categories, w.astype(np.float32), b.astype(np.float32), e.shape[1], HASH_DIM,
                        mean, scale, meta)
    head.save(args.out)
    print(f"train accuracy {train_acc:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
