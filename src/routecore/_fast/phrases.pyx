# Phrase matching: count whole-word phrases (1..PHRASE_MAX_WORDS words) in a
# text in one walk (see _pure.phrase_hits, the readable twin; keep in step).
#
# Words are exactly extract()'s words: runs of word characters (str.isalnum()
# or "_"), every Han or kana character a word of its own, lower-cased by the
# fixed table lower_cp (the same _FLAGS256 / _LC256 tables). A word hashes to
# H(w) = FNV-1a over its lower-cased code points (extract's word hash before
# its fmix); a phrase of words w1..wm hashes to
#     h1 = H(w1);  h(i) = (h(i-1) * PHRASE_MULT) ^ H(wi)   (mod 2**64).
# At each word end the hashes of the runs of 1..4 words ending there follow
# from the previous word's by one multiply-xor each (registers c0..c3). A
# 2 KiB bitmap indexed by the top 14 bits of a hash, built per call from the
# table, rejects almost every run with one test per length and a single
# branch per word; only bitmap hits pay a binary search in the sorted table.

cdef uint64_t PHRASE_MULT = _K.PHRASE_MULT
assert PHRASE_MAX_WORDS == _K.PHRASE_MAX_WORDS, "constants and phrases.pxd disagree"


cdef inline uint64_t _bit_index(uint64_t h) noexcept nogil:
    return h >> (64 - PHRASE_BITS_LOG2)


cdef inline uint64_t _test_bit(const uint64_t* bits, uint64_t h) noexcept nogil:
    cdef uint64_t b = _bit_index(h)
    return (bits[b >> 6] >> (b & 63)) & 1


cdef void _lookup(uint64_t t, PhraseState* s, const uint64_t* table, Py_ssize_t k,
                  int32_t* out) noexcept nogil:
    """Binary-search the runs whose length bit is set in t; count exact matches."""
    cdef uint64_t hs[PHRASE_MAX_WORDS]
    cdef uint64_t h
    cdef Py_ssize_t lo, hi, mid
    cdef int L
    hs[0] = s.c0
    hs[1] = s.c1
    hs[2] = s.c2
    hs[3] = s.c3
    for L in range(PHRASE_MAX_WORDS):
        if not ((t >> L) & 1):
            continue
        h = hs[L]
        # Lower bound: with duplicate entries the first one counts.
        lo = 0
        hi = k
        while lo < hi:
            mid = (lo + hi) >> 1
            if table[mid] < h:
                lo = mid + 1
            else:
                hi = mid
        if lo < k and table[lo] == h:
            out[lo] += 1


cdef inline void _emit(PhraseState* s, uint64_t wh, const uint64_t* table, Py_ssize_t k,
                       const uint64_t* bits, int32_t* out) noexcept nogil:
    s.c3 = (s.c2 * PHRASE_MULT) ^ wh
    s.c2 = (s.c1 * PHRASE_MULT) ^ wh
    s.c1 = (s.c0 * PHRASE_MULT) ^ wh
    s.c0 = wh
    s.lv = ((s.lv << 1) | 1) & s.nmask
    s.words += 1
    if bits == NULL:  # phrase_hash: hashes only
        return
    # n_max is fixed per call, so these two branches always predict.
    cdef uint64_t t = _test_bit(bits, s.c0)
    if s.nmask > 1:
        t |= _test_bit(bits, s.c1) << 1
        if s.nmask > 3:
            t |= (_test_bit(bits, s.c2) << 2) | (_test_bit(bits, s.c3) << 3)
    t &= s.lv
    if t:
        _lookup(t, s, table, k, out)


cdef void phrase_walk(const ucs_t* u, Py_ssize_t n, PhraseState* st, const uint64_t* table,
                      Py_ssize_t k, const uint64_t* bits, int32_t* out) noexcept nogil:
    """Walk extract()'s words over a str's storage, feeding each word's hash to _emit.

    The state is copied to a local so the compiler keeps it in registers.
    """
    cdef PhraseState s = st[0]
    cdef Py_ssize_t i, wlen = 0
    cdef Py_UCS4 c
    cdef uint32_t lc
    cdef int sc
    cdef uint64_t h = FNV_OFFSET
    for i in range(n):
        c = u[i]
        if ucs_t is uint8_t:
            if _FLAGS256[c] & F_WORD:
                h = (h ^ _LC256[c]) * FNV_PRIME
                wlen += 1
                continue
        else:
            if c < 256:
                if _FLAGS256[c] & F_WORD:
                    h = (h ^ _LC256[c]) * FNV_PRIME
                    wlen += 1
                    continue
            elif _flags(c) & F_WORD:
                lc = lower_cp(c)
                sc = script_of(c)
                if sc == 10 or sc == 9:  # Han, kana: one word per character
                    if wlen:
                        _emit(&s, h, table, k, bits, out)
                        h = FNV_OFFSET
                        wlen = 0
                    _emit(&s, (FNV_OFFSET ^ lc) * FNV_PRIME, table, k, bits, out)
                else:
                    h = (h ^ lc) * FNV_PRIME
                    wlen += 1
                continue
        if wlen:
            _emit(&s, h, table, k, bits, out)
            h = FNV_OFFSET
            wlen = 0
    if wlen:
        _emit(&s, h, table, k, bits, out)
    st[0] = s


cdef inline void _state_init(PhraseState* s, Py_ssize_t n_max) noexcept nogil:
    s.c0 = s.c1 = s.c2 = s.c3 = 0
    s.lv = 0
    s.nmask = ((<uint64_t>1) << n_max) - 1
    s.words = 0


cdef inline void _walk_str(str text, PhraseState* s, const uint64_t* table, Py_ssize_t k,
                           const uint64_t* bits, int32_t* out):
    # Read the str's own storage by kind: no copy (as extract does).
    PyUnicode_READY(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if kind == 1:
        phrase_walk(<const uint8_t*>data, n, s, table, k, bits, out)
    elif kind == 2:
        phrase_walk(<const uint16_t*>data, n, s, table, k, bits, out)
    else:
        phrase_walk(<const Py_UCS4*>data, n, s, table, k, bits, out)


def phrase_hash(str phrase not None):
    cdef PhraseState s
    _state_init(&s, PHRASE_MAX_WORDS)
    _walk_str(phrase, &s, NULL, 0, NULL, NULL)
    if s.words == 0:
        raise ValueError(f"phrase has no words: {phrase!r}")
    if s.words > PHRASE_MAX_WORDS:
        raise ValueError(f"phrase has {s.words} words, more than {PHRASE_MAX_WORDS}: {phrase!r}")
    return (s.c0, s.c1, s.c2, s.c3)[s.words - 1]


def phrase_hits(str text not None, table, Py_ssize_t n_max):
    if n_max < 1 or n_max > PHRASE_MAX_WORDS:
        raise ValueError(f"n_max must be in 1..{PHRASE_MAX_WORDS}")
    cdef cnp.ndarray t
    if (type(table) is np.ndarray and (<cnp.ndarray>table).descr.type_num == cnp.NPY_UINT64
            and cnp.PyArray_NDIM(<cnp.ndarray>table) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>table)):
        t = <cnp.ndarray>table  # the fast path: no conversion, no buffer acquisition
    else:
        t = np.ascontiguousarray(table, dtype=np.uint64)
        if cnp.PyArray_NDIM(t) != 1:
            raise ValueError("table must be one-dimensional")
    cdef cnp.npy_intp k = cnp.PyArray_DIM(t, 0)
    cdef const uint64_t* tp = <const uint64_t*>cnp.PyArray_DATA(t)
    cdef cnp.ndarray out = cnp.PyArray_ZEROS(1, &k, cnp.NPY_INT32, 0)
    if k == 0:
        return out
    cdef uint64_t bits[PHRASE_BITS_WORDS]
    cdef uint64_t b
    cdef Py_ssize_t j
    memset(bits, 0, sizeof(bits))
    for j in range(k):
        if j and tp[j] < tp[j - 1]:
            raise ValueError("table must be sorted ascending")
        b = _bit_index(tp[j])
        bits[b >> 6] |= (<uint64_t>1) << (b & 63)
    cdef PhraseState s
    _state_init(&s, n_max)
    _walk_str(text, &s, tp, k, bits, <int32_t*>cnp.PyArray_DATA(out))
    return out
