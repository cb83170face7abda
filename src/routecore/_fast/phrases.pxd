cdef enum:
    # Longest phrase, in words (mirrors _constants.PHRASE_MAX_WORDS; the
    # walker keeps one hash register per length, c0..c3).
    PHRASE_MAX_WORDS = 4
    # Prefilter bitmap over phrase hashes: 2**14 bits (2 KiB, stays in L1).
    PHRASE_BITS_LOG2 = 14
    PHRASE_BITS_WORDS = (1 << PHRASE_BITS_LOG2) // 64

cdef struct PhraseState:
    uint64_t c0       # hash of the last word
    uint64_t c1       # hash of the last 2 words
    uint64_t c2       # ... 3 words
    uint64_t c3       # ... 4 words
    uint64_t lv       # valid lengths: bit L set once L + 1 words (and L < n_max) were seen
    uint64_t nmask    # (1 << n_max) - 1
    Py_ssize_t words  # words seen so far

cdef void phrase_walk(const ucs_t* u, Py_ssize_t n, PhraseState* st, const uint64_t* table,
                      Py_ssize_t k, const uint64_t* bits, int32_t* out) noexcept nogil
