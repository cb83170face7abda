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
  creative, chat, reasoning;
- facebookresearch/LASER (Tatoeba, CC-BY-2.0-FR): sentence pairs inside
  translation requests -> translation;
- alexa/Topical-Chat (CDLA-Sharing-1.0): small-talk turns of its test and
  valid conversations (opening turns and one more each, trivia left out) -> chat;
- ntulsi/BotBuilder-PersonalityChat (Microsoft's Personality Chat small-talk
  datasets, MIT): the small-talk queries -> chat;
- teknium1/GPTeacher (MIT): Roleplay instructions (+ input) -> creative;
- Yale-LILY/FOLIO (CC-BY-SA-4.0; see the NOTICE on what ShareAlike may mean for
  the weights): premises and a conclusion, asked in a few phrasings -> reasoning;
- yizhongw/self-instruct (Apache-2.0): the 175 human-written seed tasks, the
  ones one category clearly fits, labelled here by id (SELF_INSTRUCT) -> several;
- the built-in categories' example prompts in routecore's defaults.yaml.

Looked for and not used: databricks-dolly-15k (CC-BY-SA-3.0; its labelled task
types would map well) has no copy a `fetch` snapshot carries (files of 4 MiB and
more are left out, the copies found are Git LFS pointers); Alpaca and other
GPT-generated sets under non-commercial terms are not openly licensed.

The promptsource templates carry the instruction wording of each task (the
reasoning ones: NLI, cause and effect, what-if and riddle templates); their
data fields are filled with text of every kind (English Tatoeba sentences,
GSM8K word problems, chat turns), so the head learns the ask, not the content.
The translation requests wrap Tatoeba sentences in a few phrasings written
here (a documented, templated source), as the FOLIO rows wrap its premises.

Never trained on the shared evaluation prompts: any training text equal (after
whitespace and case folding) to a prompt of llmrouter.train.jsonl or of the
everyday-wording sets tests/data/everyday_*.jsonl is dropped (the files are
read only to exclude, and the count is reported), and none of the
evaluation tasks' own datasets is used (no NQ, TriviaQA, MBPP, HumanEval,
MGSM or logic-grid puzzles); for GSM8K and MATH, whose train splits hold the
evaluation prompts, only their test splits are used. The data itself is not committed.

Model: multinomial logistic regression (L-BFGS, L2), classes weighted by a
traffic prior (PRIOR), features as routing.category_head defines them.
Choices (prior, the Topical-Chat cap, per-template renderings) were tuned on
tests/data/everyday_dev.jsonl and a 10% holdout of the training rows, with the
shared prompts' accuracy checked, never on everyday_prompts.jsonl or
everyday_heldout.jsonl. The licences of the data are listed in the head's
`meta` and in routecore/data/category-head.NOTICE.
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
# Chat is small talk, a small share; short factual questions are a large one.
PRIOR = {"code": 0.2, "qa": 0.3, "creative": 0.08, "chat": 0.05, "math": 0.07, "reasoning": 0.1,
         "summarization": 0.07, "extraction": 0.08, "translation": 0.05}
# Rows kept per source (default --max-per-source): chat turns are many and alike.
SOURCE_CAP = {"topical-chat": 300}
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
    "reasoning": ["anli", "super_glue/cb", "super_glue/rte", "super_glue/copa", "art", "esnli", "wiqa",
                  "quarel", "ropes", "riddle_sense"],
}
# Renderings per template: the categories with few datasets get more, each with other fillers.
PER_TEMPLATE = {"summarization": 20, "extraction": 10}
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
    chat = topical_chat(m / "alexa+Topical-Chat" / "repo", rng)
    rows.extend((t, "chat", "topical-chat") for t in chat)
    rows.extend(personality_chat(m / "ntulsi+BotBuilder-PersonalityChat" / "repo"))
    rows.extend(folio_rows(m / "Yale-LILY+FOLIO" / "repo", rng))
    rows.extend(self_instruct_rows(m / "yizhongw+self-instruct" / "repo"))
    for ex in json.loads(git_show(gpt, "Roleplay/roleplay-simple-deduped-roleplay-instruct.json")):
        text = ex["instruction"] + (("\n" + ex["input"]) if ex.get("input") else "")
        rows.append((text, "creative", "gpteacher-roleplay"))
    # Template fields are filled with text of every kind (plain sentences, word
    # problems, chat lines, logic premises), so the head learns the ask, not the content.
    fillers = english + [r[0] for r in rows if r[2] in ("gsm8k-test", "folio")] + chat
    rows.extend(promptsource_rows(m / "bigscience-workshop+promptsource" / "repo", fillers, questions,
                                  rng))
    return rows


_TRIVIA = re.compile(r"\b(did|do) you know\b|\bheard\b|\b(who|when|where|which|what year|how many|"
                     r"how much)\b|\d|\bapparently\b|\binteresting\b|\bfun fact\b", re.I)


def topical_chat(repo: Path, rng: random.Random) -> list[str]:
    """Small-talk turns: each conversation's first two messages and one more at random,
    leaving out the trivia these chats are seeded with (a fact asked or told is not small talk)."""
    out = []
    for split in ("test_freq", "test_rare", "valid_freq", "valid_rare"):
        for conv in json.loads(git_show(repo, f"conversations/{split}.json")).values():
            msgs = [m for c in conv["content"] if (m := c["message"].strip()) and not _TRIVIA.search(m)]
            out.extend(msgs[:2])
            if len(msgs) > 2:
                out.append(rng.choice(msgs[2:]))
    return out


def personality_chat(repo: Path) -> list[tuple[str, str, str]]:
    """The small-talk queries of Microsoft's Personality Chat datasets, one row per distinct query."""
    seen: set[str] = set()
    for persona in ("Friendly", "Humorous", "Professional"):
        tsv = git_show(repo, f"CSharp/Datasets/Queries_Responses_{persona}_QnAMaker.tsv")
        for line in tsv.splitlines()[1:]:
            q = line.split("\t")[0].strip()
            if q:
                seen.add(q)
    # Each query a few times: there are few of them and they are the purest small talk.
    return [(q, "chat", f"personality-chat/{i}") for q in sorted(seen) for i in range(3)]


FOLIO_ASK = ["{p}\nBased on the above, is it true that {c}", "{p}\nDoes it follow that {c}",
             "Given these facts:\n{p}\nCan we conclude: {c}", "{p}\nTrue, false or uncertain? {c}",
             "If {p0} and {p1}, then is it the case that {c}", "Here are some premises. {p}\nWhat about: {c}"]


def folio_rows(repo: Path, rng: random.Random) -> list[tuple[str, str, str]]:
    """FOLIO's premises and conclusion asked as a logic question (a few phrasings written here)."""
    rows = []
    for split in ("train", "validation"):
        for line in git_show(repo, f"data/v0.0/folio-{split}.jsonl").splitlines():
            ex = json.loads(line)
            prem = [p.strip() for p in ex["premises"] if p.strip()]
            if len(prem) < 2:
                continue
            c = ex["conclusion"].strip().rstrip(".") + "?"
            text = rng.choice(FOLIO_ASK).format(p=" ".join(prem), c=c, p0=prem[0].rstrip(".").lower(),
                                                p1=prem[1].rstrip(".").lower())
            rows.append((text, "reasoning", "folio"))
    return rows


# self-instruct's 175 human-written seed tasks, labelled here by id where one
# built-in category clearly fits (the rest are left out).
SELF_INSTRUCT = {
    "code": [28, 31, 37, 41, 50, 61, 69, 72, 138, 139, 140, 141, 158],
    "math": [22, 25, 35, 45, 58, 83, 109, 110, 136, 144],
    "reasoning": [1, 15, 40, 70, 73, 130, 153, 155],
    "creative": [4, 6, 8, 18, 20, 29, 47, 49, 55, 56, 57, 59, 63, 74, 75, 76, 79, 84, 89, 93, 100, 112,
                 116, 119, 123, 124, 129],
    "summarization": [62, 64, 137],
    "extraction": [13, 26, 39, 67, 85, 135, 148, 151, 154, 156, 157, 159, 165, 166, 168, 169, 171, 172,
                   173],
    "translation": [101, 117],
    "qa": [7, 48, 60, 88, 95, 143, 147, 160, 161, 163, 174],
    "chat": [27, 34, 105],
}


def self_instruct_rows(repo: Path) -> list[tuple[str, str, str]]:
    label = {i: cat for cat, ids in SELF_INSTRUCT.items() for i in ids}
    rows = []
    for line in git_show(repo, "data/seed_tasks.jsonl").splitlines():
        ex = json.loads(line)
        i = int(ex["id"].rsplit("_", 1)[1])
        if i in label:
            for k, inst in enumerate(ex["instances"][:1]):
                text = ex["instruction"] + (("\n" + inst["input"]) if inst["input"] else "")
                rows.extend((text, label[i], f"self-instruct/{k}/{r}") for r in range(3))
    return rows


LICENCES = {"gsm8k-test": "MIT", "math-test": "MIT", "bbh": "MIT", "gpteacher-codegen": "MIT",
            "gpteacher-roleplay": "MIT", "mt-bench": "Apache-2.0", "vicuna": "Apache-2.0",
            "promptsource": "Apache-2.0", "webquestions": "CC-BY-4.0", "tatoeba": "CC-BY-2.0-FR",
            "aqua": "Apache-2.0", "topical-chat": "CDLA-Sharing-1.0", "personality-chat": "MIT",
            "folio": "CC-BY-SA-4.0", "self-instruct": "Apache-2.0", "exemplars": "routecore"}


_JINJA_BLOCK = re.compile(r"\{%.*?%\}", re.S)
_JINJA_VAR = re.compile(r"\{\{.*?\}\}", re.S)


def promptsource_rows(repo: Path, fillers: list[str], questions: list[str], rng: random.Random,
                      per_template: int = 6) -> list[tuple[str, str, str]]:
    """Each template's prompt side (before '|||'), data fields filled with text drawn from
    `fillers` (a qa template's question field with a WebQuestions question)."""
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
                for _ in range(PER_TEMPLATE.get(cat, per_template)):
                    def fill(mt: re.Match[str], cat: str = cat) -> str:
                        if cat == "qa" and "question" in mt.group(0):
                            return rng.choice(questions)
                        n = rng.choice((1, 1, 2, 3, 6)) if "choice" not in mt.group(0) else 1
                        return " ".join(rng.choice(fillers) for _ in range(n))
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
    # float32 products (the head runs in float32), float64 for the optimiser.
    x = x.astype(np.float32)
    n, d = x.shape
    onehot = np.zeros((n, n_cls), np.float32)
    onehot[np.arange(n), y] = 1.0
    wsum = float(weights.sum())
    weights = weights.astype(np.float32)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: n_cls * d].reshape(n_cls, d).astype(np.float32)
        b = theta[n_cls * d:].astype(np.float32)
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        ll = -float((weights * np.log(np.maximum((p * onehot).sum(axis=1), 1e-30))).sum()) / wsum
        g = (p - onehot) * weights[:, None] / wsum
        gw = g.T @ x + l2 * w
        grad = np.concatenate([gw.ravel(), g.sum(axis=0)]).astype(np.float64)
        return ll + 0.5 * l2 * float((w * w).sum()), grad

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
    # ... and the everyday-wording test, dev and held-out sets.
    for path in sorted((ROOT / "tests" / "data").glob("everyday_*.jsonl")):
        banned |= {_norm(json.loads(line)["prompt"]) for line in path.open()}
    dropped = dict(Counter(r[2] for r in rows if _norm(r[0]) in banned))
    rows = [r for r in rows if _norm(r[0]) not in banned and r[1] in categories]
    by_source: dict[str, list[tuple[str, str, str]]] = {}
    for r in rows:
        by_source.setdefault(r[2], []).append(r)
    rows = []
    for name, src_rows in by_source.items():
        rng.shuffle(src_rows)
        rows.extend(src_rows[: SOURCE_CAP.get(name, args.max_per_source)])
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
            "licences": LICENCES,
            "dropped_equal_to_eval_prompts": dropped}
    head = CategoryHead(categories, w.astype(np.float32), b.astype(np.float32), e.shape[1], HASH_DIM,
                        mean, scale, meta)
    head.save(args.out)
    print(f"train accuracy {train_acc:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
