# Tuned constants for the C side. The single source of truth is _constants.py
# (shared with the pure twin); these C copies are filled once at import so the
# inner loops read plain C arrays and the two twins can never drift apart.
from routecore._fast import _constants as _K

cdef long long WORD_BASE_MILLI = _K.WORD_BASE_MILLI
cdef int N_KNEES = len(_K.WORD_KNEES)
cdef long long WORD_KNEES[8]
cdef long long WORD_SLOPES_MILLI[8]
cdef long long ACC_MILLI = _K.ACC_MILLI
cdef long long CAMEL_MILLI = _K.CAMEL_MILLI
cdef long long ACCENTED_TEXT_PERMILLE = _K.ACCENTED_TEXT_PERMILLE
cdef long long ACCENTED_TEXT_KNEE = _K.ACCENTED_TEXT_KNEE
cdef long long ACCENTED_TEXT_SLOPE_MILLI = _K.ACCENTED_TEXT_SLOPE_MILLI
cdef long long DIGIT_GROUP_MILLI = _K.DIGIT_GROUP_MILLI
cdef long long PUNCT_RUN_MILLI = _K.PUNCT_RUN_MILLI
cdef long long PUNCT_CHAR_MILLI = _K.PUNCT_CHAR_MILLI
cdef long long SPACE_MILLI = _K.SPACE_MILLI
cdef long long NEWLINE_MILLI = _K.NEWLINE_MILLI
cdef long long SCRIPT_RUN_MILLI[N_SCRIPTS]
cdef long long SCRIPT_CHAR_MILLI[N_SCRIPTS]
cdef long long SCRIPT_SYM_MILLI[N_SCRIPTS]
cdef uint64_t FAMILY_SEEDS[3]
cdef int32_t FAMILY_WEIGHTS[3]
cdef uint64_t CHAR_SEED = _K.CHAR_SEED
cdef uint64_t NGRAM_MULTS[1]

for _i in range(N_KNEES):
    WORD_KNEES[_i] = _K.WORD_KNEES[_i]
    WORD_SLOPES_MILLI[_i] = _K.WORD_SLOPES_MILLI[_i]
for _i in range(N_SCRIPTS):
    SCRIPT_RUN_MILLI[_i] = _K.SCRIPT_RUN_MILLI[_i]
    SCRIPT_CHAR_MILLI[_i] = _K.SCRIPT_CHAR_MILLI[_i]
    SCRIPT_SYM_MILLI[_i] = _K.SCRIPT_SYM_MILLI[_i]
for _i in range(3):
    FAMILY_SEEDS[_i] = _K.FAMILY_SEEDS[_i]
    FAMILY_WEIGHTS[_i] = _K.FAMILY_WEIGHTS[_i]
for _i in range(1):
    NGRAM_MULTS[_i] = _K.NGRAM_MULTS[_i]

SCALAR_NAMES = tuple(_K.SCALAR_NAMES)
