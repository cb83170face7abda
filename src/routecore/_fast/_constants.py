"""Tuned constants shared by the pure twin; `constants.pxi` mirrors them for C.

Token-estimate costs are in milli-tokens (integers, so C and Python sum
exactly alike). They were fitted by bounded least squares on relative error against
tiktoken's cl100k_base on prose, code and thirteen languages (bench/tokens.py
--split reports the fit and held-out halves).
"""

from __future__ import annotations

# Latin words: base cost plus, past each knee (in letters), a per-letter slope.
WORD_BASE_MILLI = 930
WORD_KNEES = (4, 6, 10, 13)
WORD_SLOPES_MILLI = (119, 13, 352, 816)
ACC_MILLI = 1172  # each non-ASCII Latin letter (é, ß): two UTF-8 bytes, often split
CAMEL_MILLI = 142  # each lower->Upper step inside a word (camelCase pieces); held, not refitted
# Accented Latin text (French, German, Spanish, Vietnamese...): cl100k's vocabulary
# is English-heavy, so their words, accented or not, split more. When at least
# ACCENTED_TEXT_PERMILLE of a text's Latin word letters are non-ASCII (English
# prose and code: under 4; de/es/fr catalogues: 8.5-42), every Latin word adds this
# slope per letter past ACCENTED_TEXT_KNEE (summed in the pass, applied at its end).
ACCENTED_TEXT_PERMILLE = 8
ACCENTED_TEXT_KNEE = 4
ACCENTED_TEXT_SLOPE_MILLI = 115
DIGIT_GROUP_MILLI = 1640  # per group of up to 3 digits
PUNCT_RUN_MILLI = 826  # an ASCII punctuation run
PUNCT_CHAR_MILLI = 284  # each further ASCII punctuation char in the run
SPACE_MILLI = 655  # a whitespace token not absorbed by the next word
NEWLINE_MILLI = 973  # a run of whitespace holding newlines
# Per script (see _pure.script_of): 0 ASCII, 1 Latin, 2 Greek, 3 Cyrillic,
# 4 Hebrew, 5 Arabic, 6 Indic, 7 Thai/Lao, 8 Hangul, 9 Kana, 10 Han,
# 11 CJK punctuation/fullwidth, 12 astral (emoji...), 13 other BMP.
# Refitted on half of bench/tokens.py's corpus (even-numbered texts of each
# kind), checked on the other half; runs and chars bounded to [0, 2000] and
# symbols (non-ASCII punctuation: « » “ ” …, about one token each) to [0, 1000].
# Entries with too little corpus mass to fit (under 50 uses) keep their
# earlier values: runs 11-13, chars 11-13, symbols 2-4, 8-10 and 12.
SCRIPT_RUN_MILLI = (0, 0, 0, 2000, 804, 1365, 1398, 1714, 503, 1008, 456, 500, 500, 500)
SCRIPT_CHAR_MILLI = (0, 0, 1068, 181, 1023, 566, 685, 688, 1011, 793, 1104, 519, 1500, 1000)
SCRIPT_SYM_MILLI = (0, 1000, 1000, 1000, 1000, 645, 993, 1000, 1000, 1000, 1000, 230, 1388, 1000)

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
# Feature families: word unigram, word bigram, char 3-gram.
# Words: FNV-1a over lower-cased code points, then fmix64(h ^ seed); the low
# bits pick the bucket, the top bit the sign. (The char family uses no seed.)
FAMILY_SEEDS = (0x0, 0x5BD1E9955BD1E995, 0x0)
# Weights in tenths (integers, so C and Python sum each bucket exactly alike).
FAMILY_WEIGHTS = (10, 7, 5)
# Char 3-grams: each code point gets a 64-bit mix m = fmix64(CHAR_SEED + lc)
# (computed once per code point, a table for Latin-1); a 3-gram hashes to
# h = rotl(m0, 42) ^ rotl(m1, 21) ^ m2; x = h * NGRAM_MULTS[0] (mod 2**64),
# bucket = (x >> 32) & (dim - 1), sign = top bit of x.
CHAR_SEED = 0x91B7584A2265B1F5
NGRAM_MULTS = (0xCD613E30D8F16ADF,)

# Phrases (phrase_hits / phrase_hash): a word hashes to H(w) = FNV-1a over its
# lower-cased code points (extract's word hash, before the fmix); a phrase of
# words w1..wm to h1 = H(w1), h(i) = (h(i-1) * PHRASE_MULT) ^ H(wi) mod 2**64.
PHRASE_MAX_WORDS = 4
PHRASE_MULT = 0x9FB21C651E98DF25

SCALAR_NAMES: tuple[str, ...] = (
    "log_chars",  # log1p(number of code points)
    "log_tokens",  # log1p(count_tokens(text))
    "code",  # [0, 1): fences, code keywords, line-end { } ; :, indented lines
    "math",  # [0, 1): digits, operators, backslash/$ (LaTeX), math words
    "question",  # [0, 1]: ends with ?, has a ?, a sentence opens with a wh-word
    "instruction",  # [0, 1]: imperatives (write, explain, list...) opening a sentence
    "frac_non_ascii_letters",  # non-ASCII letters / letters
    "frac_cjk",  # Han, kana and Hangul code points / code points
    "frac_digits",  # digit code points / code points
    "log_lines",  # log1p(number of lines)
    "log_sentences",  # log1p(number of sentences)
)

CODE_KEYWORDS = (
    "def",
    "function",
    "class",
    "import",
    "return",
    "const",
    "let",
    "var",
    "include",
    "elif",
    "lambda",
    "struct",
    "void",
    "printf",
    "println",
    "async",
    "await",
    "fn",
    "impl",
    "self",
    "null",
    "nullptr",
    "int",
    "std",
    "namespace",
    "public",
    "private",
)
MATH_WORDS = (
    "solve",
    "equation",
    "integral",
    "derivative",
    "calculate",
    "compute",
    "probability",
    "sum",
    "prove",
    "theorem",
    "matrix",
    "polynomial",
    "sqrt",
    "frac",
    "log",
    "sin",
    "cos",
    "divided",
    "multiply",
    "percent",
    "fraction",
    "algebra",
    "geometry",
    "triangle",
)
IMPERATIVE_WORDS = (
    "write",
    "explain",
    "list",
    "summarize",
    "summarise",
    "describe",
    "create",
    "implement",
    "generate",
    "translate",
    "give",
    "tell",
    "compare",
    "analyze",
    "analyse",
    "find",
    "calculate",
    "solve",
    "design",
    "rewrite",
    "fix",
    "make",
    "show",
    "provide",
    "classify",
    "convert",
    "draft",
    "suggest",
    "outline",
    "identify",
    "name",
    "define",
    "evaluate",
    "determine",
    "please",
)
WH_WORDS = (
    "what",
    "why",
    "how",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "is",
    "are",
    "can",
    "could",
    "does",
    "do",
    "did",
    "should",
    "would",
    "will",
)

# score_models (the policy kernel): strategy codes ...
SCORE_QUALITY = 0
SCORE_COST = 1
SCORE_LATENCY = 2
SCORE_COMPLEXITY = 3  # quality, raised to the tier boost
SCORE_DOMAIN = 4  # multi-objective, overwritten by the domain boost
SCORE_MULTI = 5
SCORE_NONE = 6  # score = quality (the learned router ranks by itself)
# ... and rejection codes, in the order the checks run (the first failing one wins).
FAIL_OK = 0
FAIL_DENIED = 1
FAIL_NOT_ALLOWED = 2
FAIL_CAPABILITY = 3
FAIL_CONTEXT = 4
FAIL_MAX_OUTPUT = 5
FAIL_UNHEALTHY = 6
FAIL_COST = 7
FAIL_LATENCY = 8
FAIL_QUALITY = 9
FAIL_AT_LIMIT = 10  # from the caller's codes: at its rate limit or in-flight cap (routing/load.py)
# Columns of score_models' per-model table; the quality matrix follows them.
COL_PRICE_IN = 0
COL_PRICE_OUT = 1
COL_P50 = 2
COL_TPS = 3
COL_CONTEXT = 4
COL_MAX_OUTPUT = 5
COL_CAPS = 6
COL_DEFAULT_Q = 7
COL_P95 = 8  # p95 of a typical answer (ms): the latency constraint is checked on it
N_MODEL_COLS = 9
# Quality tolerance of the cost / latency strategies, and the multi-objective
# value of a 10x cost or latency difference at weight 1.
QUALITY_TOLERANCE = 0.05
DECADE_VALUE = 0.2
