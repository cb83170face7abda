# Static sentence embedding: WordPiece ids in one walk over the text, then
# the mean of their vectors (see _pure.embed, the readable twin and the
# definition of the tokenizer; keep the two in step).
#
# A token is found by the FNV-1a hash of its code points: the walker hashes
# each candidate piece incrementally (one multiply-xor per code point), so a
# word of L code points costs O(L * max_piece) hash steps and a few probes.
# Two vocabulary tokens with the same 64-bit hash are refused at build time;
# a piece of text colliding with a token it is not is ~2**-64 per probe.

from routecore._fast._pure.embed import normalize_unicode as _normalize_unicode

cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void* p) nogil

cdef uint64_t _CONT_HASH = ((FNV_OFFSET ^ 35) * FNV_PRIME ^ 35) * FNV_PRIME  # "##"


cdef enum:
    _AHEAD = 4  # rows prefetched ahead while pooling


cdef inline void _prefetch_row(const float* row, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(0, d, 16):  # one 64-byte cache line per 16 floats
        _prefetch(row + j)


cdef inline bint _ascii_punct(Py_UCS4 c) noexcept nogil:
    return (33 <= c <= 47) or (58 <= c <= 64) or (91 <= c <= 96) or (123 <= c <= 126)


cdef class EmbedTable:
    def __cinit__(self):
        self.keys = NULL
        self.vals = NULL

    def __init__(self, tokens, vectors):
        cdef cnp.ndarray v = np.ascontiguousarray(vectors, dtype=np.float32)
        if cnp.PyArray_NDIM(v) != 2 or cnp.PyArray_DIM(v, 0) != len(tokens) or cnp.PyArray_DIM(v, 1) < 1:
            raise ValueError("vectors must have shape (len(tokens), dim) with dim >= 1")
        cdef Py_ssize_t n = len(tokens), i
        cdef uint64_t size = 1024, h, s
        while size < 4 * <uint64_t>n:
            size <<= 1
        self.keys = <uint64_t*>calloc(size, sizeof(uint64_t))
        self.vals = <int32_t*>calloc(size, sizeof(int32_t))
        if self.keys == NULL or self.vals == NULL:
            raise MemoryError()
        self.mask = size - 1
        cdef int longest = 1, plen
        cdef Py_UCS4 ch
        for i in range(n):
            tok = tokens[i]
            if not isinstance(tok, str) or not tok or tok == "##":
                raise ValueError(f"token {i} must be a non-empty str other than '##'")
            h = FNV_OFFSET
            for ch in <str>tok:
                h = (h ^ <uint32_t>ch) * FNV_PRIME
            if h == 0:
                raise ValueError(f"token {i} ({tok!r}) hashes to 0")
            s = fmix64(h) & self.mask
            while self.keys[s] != 0:
                if self.keys[s] == h:
                    raise ValueError(f"token {i} ({tok!r}) is a duplicate (or a hash collision)")
                s = (s + 1) & self.mask
            self.keys[s] = h
            self.vals[s] = <int32_t>i
            plen = len(tok) - 2 if (<str>tok).startswith("##") else len(tok)
            if plen > longest:
                longest = plen
        self.max_piece = min(longest, WORDPIECE_MAX_CHARS)
        self.n_tokens = n
        self.dim = cnp.PyArray_DIM(v, 1)
        self.vectors = v
        self.vecs = <const float*>cnp.PyArray_DATA(v)

    def __dealloc__(self):
        free(self.keys)
        free(self.vals)


cdef inline int32_t _find(EmbedTable t, uint64_t h) noexcept nogil:
    cdef uint64_t s = fmix64(h) & t.mask
    while t.keys[s] != 0:
        if t.keys[s] == h:
            return t.vals[s]
        s = (s + 1) & t.mask
    return -1


cdef Py_ssize_t _wordpiece(EmbedTable t, const Py_UCS4* w, Py_ssize_t L, int32_t* out,
                           Py_ssize_t room) noexcept nogil:
    """Greedy longest-piece split of w[:L]; ids written to out (at most room), or 0
    ids when the word has no complete split."""
    cdef uint64_t hs[WORDPIECE_MAX_CHARS]
    cdef int32_t pieces[WORDPIECE_MAX_CHARS]
    cdef Py_ssize_t start = 0, end, lim, e, n = 0
    cdef uint64_t h
    cdef int32_t tid
    while start < L:
        h = FNV_OFFSET if start == 0 else _CONT_HASH
        lim = start + t.max_piece
        if lim > L:
            lim = L
        for e in range(start, lim):
            h = (h ^ <uint32_t>w[e]) * FNV_PRIME
            hs[e - start] = h
        tid = -1
        end = lim
        while end > start:
            tid = _find(t, hs[end - start - 1])
            if tid >= 0:
                break
            end -= 1
        if tid < 0:
            return 0
        pieces[n] = tid
        n += 1
        start = end
    if n > room:
        n = room
    for e in range(n):
        out[e] = pieces[e]
    return n


cdef Py_ssize_t _walk_ids(EmbedTable t, const ucs_t* u, Py_ssize_t n, int32_t* out,
                          Py_ssize_t cap) noexcept nogil:
    """The ASCII walk (see _pure.embed) feeding words to _wordpiece; stops at cap ids."""
    cdef Py_UCS4 word[WORDPIECE_MAX_CHARS + 1]
    cdef Py_ssize_t i, wl = 0, got = 0
    cdef Py_UCS4 c
    for i in range(n):
        c = u[i]
        if c < 128:
            if c == 32 or c == 10 or c == 9 or c == 13:
                if wl:
                    if wl <= WORDPIECE_MAX_CHARS:
                        got += _wordpiece(t, word, wl, out + got, cap - got)
                        if got >= cap:
                            return got
                    wl = 0
                continue
            if c < 32 or c == 127:
                continue
            if _ascii_punct(c):
                if wl:
                    if wl <= WORDPIECE_MAX_CHARS:
                        got += _wordpiece(t, word, wl, out + got, cap - got)
                        if got >= cap:
                            return got
                    wl = 0
                word[0] = c
                got += _wordpiece(t, word, 1, out + got, cap - got)
                if got >= cap:
                    return got
                continue
            if 65 <= c <= 90:
                c = <Py_UCS4>(<uint32_t>c + 32)
        if wl < WORDPIECE_MAX_CHARS + 1:
            word[wl] = c
        wl += 1
    if wl and wl <= WORDPIECE_MAX_CHARS:
        got += _wordpiece(t, word, wl, out + got, cap - got)
    return got


cdef Py_ssize_t _ids_str(EmbedTable t, str text, int32_t* out, Py_ssize_t cap) except -1:
    # text is pure ASCII or normalised (_norm); read its storage by kind, no copy.
    PyUnicode_READY(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if kind == 1:
        return _walk_ids(t, <const uint8_t*>data, n, out, cap)
    if kind == 2:
        return _walk_ids(t, <const uint16_t*>data, n, out, cap)
    return _walk_ids(t, <const Py_UCS4*>data, n, out, cap)


cdef inline str _norm(str text):
    return text if text.isascii() else _normalize_unicode(text)


cdef inline Py_ssize_t _cap(str text, Py_ssize_t max_tokens) except -1:
    # Every id consumes at least one code point of the normalised text.
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    return max_tokens if max_tokens < n else n


cdef void _sum_rows(EmbedTable t, const int32_t* ids, Py_ssize_t k, float* acc) noexcept nogil:
    """acc[:dim] += the rows of ids[:k]. Rows are scattered over the table: fetch a
    few ahead (and all their cache lines) so the adds do not wait on memory."""
    cdef Py_ssize_t i, j, d = t.dim
    cdef const float* row
    for i in range(min(k, _AHEAD)):
        _prefetch_row(t.vecs + <Py_ssize_t>ids[i] * d, d)
    for i in range(k):
        if i + _AHEAD < k:
            _prefetch_row(t.vecs + <Py_ssize_t>ids[i + _AHEAD] * d, d)
        row = t.vecs + <Py_ssize_t>ids[i] * d
        for j in range(d):
            acc[j] += row[j]


def embed_ids(EmbedTable table not None, str text not None, Py_ssize_t max_tokens):
    text = _norm(text)
    cdef Py_ssize_t cap = _cap(text, max_tokens)
    cdef int32_t* buf = <int32_t*>malloc((cap + 1) * sizeof(int32_t))
    if buf == NULL:
        raise MemoryError()
    cdef cnp.npy_intp k
    try:
        k = _ids_str(table, text, buf, cap)
        out = cnp.PyArray_EMPTY(1, &k, cnp.NPY_INT32, 0)
        memcpy(cnp.PyArray_DATA(out), buf, k * sizeof(int32_t))
    finally:
        free(buf)
    return out


def embed(EmbedTable table not None, str text not None, Py_ssize_t max_tokens):
    text = _norm(text)
    cdef Py_ssize_t cap = _cap(text, max_tokens)
    cdef int32_t stack_buf[1024]
    cdef int32_t* buf = stack_buf
    if cap > 1024:
        buf = <int32_t*>malloc(cap * sizeof(int32_t))
        if buf == NULL:
            raise MemoryError()
    cdef cnp.npy_intp d = table.dim
    cdef cnp.ndarray out = cnp.PyArray_ZEROS(1, &d, cnp.NPY_FLOAT32, 0)
    cdef float* acc = <float*>cnp.PyArray_DATA(out)
    cdef Py_ssize_t k, j
    cdef double norm = 0.0
    try:
        k = _ids_str(table, text, buf, cap)
        with nogil:
            _sum_rows(table, buf, k, acc)
            if k:
                for j in range(d):
                    norm += <double>acc[j] * acc[j]
                if norm > 0.0:
                    norm = 1.0 / sqrt(norm)
                    for j in range(d):
                        acc[j] = <float>(acc[j] * norm)
    finally:
        if buf != stack_buf:
            free(buf)
    return out
