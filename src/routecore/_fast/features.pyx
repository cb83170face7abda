# Feature extraction: hashed n-grams and scalar cues in one walk over the
# text (see _pure.extract, the readable twin; keep the two in step).

cimport numpy as cnp
cnp.import_array()

cdef uint64_t FNV_OFFSET = 0xCBF29CE484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001B3ULL
cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL

# Keyword lookup: open addressing over FNV hashes, flag bits per word list.
cdef enum:
    KW_SIZE = 512
    KW_CODE = 1
    KW_MATH = 2
    KW_IMPER = 4
    KW_WH = 8
    LOG_TABLE = 4096
cdef uint64_t _kw_hash[KW_SIZE]
cdef unsigned char _kw_flag[KW_SIZE]
# log1p(a / 10): the sublinear weight of a bucket holding a tenths of weight.
cdef double _LOG1P_TENTHS[LOG_TABLE]
# Lower-cased code point and its 64-bit mix, for every Latin-1 code point.
cdef uint32_t _LC256[256]
cdef uint64_t _MIX256[256]
cdef uint64_t _R21_256[256]


cdef inline uint64_t fmix64(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53ULL
    x ^= x >> 33
    return x


cdef inline uint64_t rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint32_t lower_cp(uint32_t cp) noexcept nogil:
    if 0x41 <= cp <= 0x5A:
        return cp + 32
    if cp < 0xC0:
        return cp
    if cp <= 0xDE:
        return cp + 32 if cp != 0xD7 else cp
    if 0x391 <= cp <= 0x3AB and cp != 0x3A2:
        return cp + 32
    if 0x410 <= cp <= 0x42F:
        return cp + 32
    if 0x400 <= cp <= 0x40F:
        return cp + 80
    return cp


cdef inline unsigned int _kw_slot(uint64_t h) noexcept nogil:
    return <unsigned int>((h ^ (h >> 29)) & (KW_SIZE - 1))


cdef inline unsigned char kw_lookup(uint64_t h) noexcept nogil:
    cdef unsigned int s = _kw_slot(h)
    while _kw_hash[s] != 0:
        if _kw_hash[s] == h:
            return _kw_flag[s]
        s = (s + 1) & (KW_SIZE - 1)
    return 0


cdef void _kw_add(str word, unsigned char flag):
    cdef uint64_t h = FNV_OFFSET
    cdef Py_UCS4 ch
    for ch in word:
        h = (h ^ <uint32_t>ch) * FNV_PRIME
    cdef unsigned int s = _kw_slot(h)
    while _kw_hash[s] != 0 and _kw_hash[s] != h:
        s = (s + 1) & (KW_SIZE - 1)
    _kw_hash[s] = h
    _kw_flag[s] |= flag


memset(_kw_hash, 0, sizeof(_kw_hash))
memset(_kw_flag, 0, sizeof(_kw_flag))
for _w in _K.CODE_KEYWORDS:
    _kw_add(_w, KW_CODE)
for _w in _K.MATH_WORDS:
    _kw_add(_w, KW_MATH)
for _w in _K.IMPERATIVE_WORDS:
    _kw_add(_w, KW_IMPER)
for _w in _K.WH_WORDS:
    _kw_add(_w, KW_WH)
for _i in range(LOG_TABLE):
    _LOG1P_TENTHS[_i] = log1p(_i / 10.0)
for _i in range(256):
    _LC256[_i] = 0x20 if _FLAGS256[_i] & F_SPACE else lower_cp(_i)
    _MIX256[_i] = fmix64(CHAR_SEED + _LC256[_i])
    _R21_256[_i] = rotl(_MIX256[_i], 21)


cdef inline void _add_word(int32_t* acc, uint64_t mask, int family, uint64_t h) noexcept nogil:
    cdef uint64_t x = fmix64(h ^ FAMILY_SEEDS[family])
    # The top bit is the sign: colliding features cancel instead of piling up.
    # Branch-free: sg is 0 or -1, (w ^ sg) - sg is w or -w.
    cdef int32_t sg = <int32_t>(<int64_t>x >> 63)
    acc[x & mask] += (FAMILY_WEIGHTS[family] ^ sg) - sg


cdef struct WordState:
    uint64_t h
    Py_ssize_t length
    uint64_t prev
    bint has_prev
    bint at_start
    double code_m
    double math_m
    double imper
    long long wh_starts
    long long words


cdef inline void _end_word(WordState* w, int32_t* acc, uint64_t mask) noexcept nogil:
    if w.length == 0:
        return
    _add_word(acc, mask, 0, w.h)
    if w.has_prev:
        _add_word(acc, mask, 1, w.prev * GOLDEN + w.h)
    cdef unsigned char f = kw_lookup(w.h)
    if f:
        if f & KW_CODE:
            w.code_m += 2.0
        if f & KW_MATH:
            w.math_m += 2.0
        if f & KW_IMPER:
            w.imper += 1.0 if w.at_start else 0.25
        if (f & KW_WH) and w.at_start:
            w.wh_starts += 1
    w.words += 1
    w.at_start = False
    w.prev = w.h
    w.has_prev = True
    w.h = FNV_OFFSET
    w.length = 0


cdef void _grams(const ucs_t* u, Py_ssize_t n, int32_t* acc, uint64_t mask) noexcept nogil:
    """Char 3-grams over the lower-cased stream, whitespace runs collapsed.

    h = rotl(m0, 42) ^ rotl(m1, 21) ^ m2, kept incrementally: a2 = rotl(m0, 42)
    and a1 = rotl(m1, 21) roll forward, so a 3-gram costs two xors.
    """
    cdef Py_ssize_t i, glen = 0
    cdef Py_UCS4 c
    cdef uint64_t m, r, a1 = 0, a2 = 0, x
    cdef bint space, prev_space = False
    cdef int32_t wt = FAMILY_WEIGHTS[2], sg
    cdef uint64_t mult = NGRAM_MULTS[0]
    for i in range(n):
        c = u[i]
        if ucs_t is uint8_t:
            space = (_FLAGS256[c] & F_SPACE) != 0
            m = _MIX256[c]
            r = _R21_256[c]
        else:
            if c < 256:
                space = (_FLAGS256[c] & F_SPACE) != 0
                m = _MIX256[c]
                r = _R21_256[c]
            else:
                space = u_isspace(c)
                m = _MIX256[0x20] if space else fmix64(CHAR_SEED + lower_cp(c))
                r = rotl(m, 21)
        if space and prev_space:
            continue
        prev_space = space
        glen += 1
        if glen >= 3:
            x = (a2 ^ a1 ^ m) * mult
            sg = <int32_t>(<int64_t>x >> 63)
            acc[(x >> 32) & mask] += (wt ^ sg) - sg
        a2 = rotl(a1, 21)
        a1 = r


cdef long long extract_kind(const ucs_t* u, Py_ssize_t n, int32_t* acc, Py_ssize_t dim,
                            float* vec, float* scalars) noexcept nogil:
    """Fills vec and scalars; returns the token estimate (count_tokens), whose
    log1p is scalars[1], so callers need not walk the text again for it."""
    cdef Py_ssize_t i, b
    cdef Py_UCS4 c, c2, last_nonspace = 0, last_line_char = 0
    cdef uint32_t lc
    cdef uint64_t mask = <uint64_t>(dim - 1)
    cdef unsigned char fl
    cdef bint space, line_start = True, content = False
    cdef long long letters = 0, non_ascii_letters = 0, cjk = 0, digits = 0, qmarks = 0
    cdef long long sentences = 0, ticks = 0, indent = 0
    cdef long long lines = 1 if n else 0
    cdef int s = 0
    cdef WordState w
    w.h = FNV_OFFSET
    w.length = 0
    w.prev = 0
    w.has_prev = False
    w.at_start = True
    w.code_m = 0.0
    w.math_m = 0.0
    w.imper = 0.0
    w.wh_starts = 0
    w.words = 0

    _grams(u, n, acc, mask)
    for i in range(n):
        c = u[i]
        if ucs_t is uint8_t:
            fl = _FLAGS256[c]
            lc = _LC256[c]
        else:
            if c < 256:
                fl = _FLAGS256[c]
                lc = _LC256[c]
                s = 0
            else:
                fl = _flags(c)
                lc = 0x20 if fl & F_SPACE else lower_cp(c)
                s = script_of(c)
        space = (fl & F_SPACE) != 0

        if fl & F_WORD:
            if ucs_t is not uint8_t and (s == 10 or s == 9):
                _end_word(&w, acc, mask)
                w.h = (FNV_OFFSET ^ lc) * FNV_PRIME
                w.length = 1
                _end_word(&w, acc, mask)
            else:
                w.h = (w.h ^ lc) * FNV_PRIME
                w.length += 1
        else:
            _end_word(&w, acc, mask)

        if fl & F_LETTER:
            letters += 1
            if c >= 0x80:
                non_ascii_letters += 1
        if ucs_t is not uint8_t:
            if s == 10 or s == 9 or s == 8:
                cjk += 1
        if fl & F_DIGIT:
            digits += 1
            w.math_m += 0.2
        if c == 0x0A:
            lines += 1
            if last_line_char == 0x7B or last_line_char == 0x7D or last_line_char == 0x3B:
                w.code_m += 1.0
            elif last_line_char == 0x3A:
                w.code_m += 0.5
            line_start = True
            indent = 0
            last_line_char = 0
            w.at_start = True
        elif space:
            if line_start:
                indent += 4 if c == 0x09 else 1
        else:
            if line_start:
                if indent >= 2 and lines > 1:
                    w.code_m += 1.0
                line_start = False
            last_line_char = c
            last_nonspace = c
            if fl & F_WORD:
                # Letters, digits and "_" are none of the marks below.
                ticks = 0
                content = True
                continue
            if c == 0x60:
                ticks += 1
                if ticks == 3:
                    w.code_m += 4.0
            else:
                ticks = 0
            if c == 0x7B or c == 0x7D or c == 0x3B:
                w.code_m += 0.5
            elif (c == 0x2B or c == 0x2D or c == 0x2A or c == 0x2F or c == 0x3D or c == 0x5E
                    or c == 0x3C or c == 0x3E or c == 0x25):
                w.math_m += 0.5
            elif c == 0x5C or c == 0x24:
                w.math_m += 1.0
            if c == 0x3F or c == 0xFF1F:
                qmarks += 1
            if c == 0x2E or c == 0x21 or c == 0x3F:
                if i + 1 < n:
                    c2 = u[i + 1]
                    if ucs_t is uint8_t:
                        space = (_FLAGS256[c2] & F_SPACE) != 0
                    else:
                        space = (_FLAGS256[c2] & F_SPACE) != 0 if c2 < 256 else u_isspace(c2)
                if i + 1 == n or space:
                    if content:
                        sentences += 1
                        content = False
                    w.at_start = True
                else:
                    content = True
            elif c == 0x3002 or c == 0xFF01 or c == 0xFF1F:
                if content:
                    sentences += 1
                    content = False
                w.at_start = True
            else:
                content = True
    _end_word(&w, acc, mask)
    if content:
        sentences += 1

    # Signed sum of family weights per bucket -> sign(x) * log1p(|x|), then L2.
    # Reading a bucket also clears it, so the scratch stays zero between calls.
    cdef double v, norm = 0.0
    cdef int32_t a, sg
    for b in range(dim):
        a = acc[b]
        acc[b] = 0
        sg = a >> 31
        a = (a ^ sg) - sg
        if a < LOG_TABLE:  # _LOG1P_TENTHS[0] == 0: no branch on empty buckets
            v = _LOG1P_TENTHS[a]
        else:
            v = log1p(a / 10.0)
        v *= <double>(1 + 2 * sg)
        norm += v * v
        vec[b] = <float>v
    if norm > 0.0:
        norm = sqrt(norm)
        for b in range(dim):
            vec[b] = <float>(vec[b] / norm)

    cdef double fw = 0.05 * w.words
    cdef double question = 0.5 if (last_nonspace == 0x3F or last_nonspace == 0xFF1F) else 0.0
    if qmarks:
        question += 0.25
    if w.wh_starts:
        question += 0.25
    scalars[0] = <float>log1p(<double>n)
    cdef long long tokens = count_tokens_kind(u, n)
    scalars[1] = <float>log1p(<double>tokens)
    scalars[2] = <float>(w.code_m / (w.code_m + 4.0 + fw))
    scalars[3] = <float>(w.math_m / (w.math_m + 4.0 + fw))
    scalars[4] = <float>question
    scalars[5] = <float>min(1.0, 0.5 * w.imper)
    scalars[6] = <float>(<double>non_ascii_letters / letters if letters else 0.0)
    scalars[7] = <float>(<double>cjk / n if n else 0.0)
    scalars[8] = <float>(<double>digits / n if n else 0.0)
    scalars[9] = <float>log1p(<double>lines)
    scalars[10] = <float>log1p(<double>sentences)
    return tokens


# Per-dim scratch accumulator, all zeros between calls (extract_kind clears
# what it reads). Every caller holds the GIL, so one module-level buffer is safe.
cdef int32_t* _acc = NULL
cdef Py_ssize_t _acc_cap = 0


cdef int _ensure_acc(Py_ssize_t dim) except -1:
    """Check `dim` and grow the shared bucket accumulator to hold it."""
    global _acc, _acc_cap
    if dim < 1 or (dim & (dim - 1)) != 0 or dim > MAX_DIM:
        raise ValueError("dim must be a power of two <= 2**30")
    cdef void* p
    if dim > _acc_cap:
        p = calloc(dim, sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        free(_acc)
        _acc = <int32_t*>p
        _acc_cap = dim
    return 0


def extract(str text not None, Py_ssize_t dim):
    _ensure_acc(dim)
    PyUnicode_READY(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef cnp.npy_intp d = dim, ns = N_SCALARS
    cdef cnp.ndarray vec = cnp.PyArray_EMPTY(1, &d, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray scalars = cnp.PyArray_EMPTY(1, &ns, cnp.NPY_FLOAT32, 0)
    cdef float* vp = <float*>cnp.PyArray_DATA(vec)
    cdef float* sp = <float*>cnp.PyArray_DATA(scalars)
    cdef long long tokens
    if kind == 1:
        tokens = extract_kind(<const uint8_t*>data, n, _acc, dim, vp, sp)
    elif kind == 2:
        tokens = extract_kind(<const uint16_t*>data, n, _acc, dim, vp, sp)
    else:
        tokens = extract_kind(<const Py_UCS4*>data, n, _acc, dim, vp, sp)
    return vec, scalars, tokens


def extract_many(list texts not None, Py_ssize_t dim):
    """`extract` for every text at once: (vecs float32[n, dim], scalars float32[n, N_SCALARS],
    token estimates int64[n]).

    One call and three allocations for the whole batch instead of a call and two
    arrays per text; row i equals `extract(texts[i], dim)`.
    """
    _ensure_acc(dim)
    cdef Py_ssize_t rows = len(texts), r
    for r in range(rows):
        if not isinstance(texts[r], str):
            raise TypeError(f"texts[{r}] must be a str, not {type(texts[r]).__name__}")
    cdef cnp.npy_intp shape_v[2]
    cdef cnp.npy_intp shape_s[2]
    shape_v[0] = rows
    shape_v[1] = dim
    shape_s[0] = rows
    shape_s[1] = N_SCALARS
    cdef cnp.ndarray vecs = cnp.PyArray_EMPTY(2, shape_v, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray scalars = cnp.PyArray_EMPTY(2, shape_s, cnp.NPY_FLOAT32, 0)
    cdef float* vp = <float*>cnp.PyArray_DATA(vecs)
    cdef float* sp = <float*>cnp.PyArray_DATA(scalars)
    cdef cnp.npy_intp nrows = rows
    cdef cnp.ndarray tokens = cnp.PyArray_EMPTY(1, &nrows, cnp.NPY_INT64, 0)
    cdef int64_t* tp = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef str text
    cdef int kind
    cdef void* data
    cdef Py_ssize_t n
    for r in range(rows):
        text = <str>texts[r]
        PyUnicode_READY(text)
        kind = PyUnicode_KIND(text)
        data = PyUnicode_DATA(text)
        n = PyUnicode_GET_LENGTH(text)
        if kind == 1:
            tp[r] = extract_kind(<const uint8_t*>data, n, _acc, dim, vp + r * dim, sp + r * N_SCALARS)
        elif kind == 2:
            tp[r] = extract_kind(<const uint16_t*>data, n, _acc, dim, vp + r * dim, sp + r * N_SCALARS)
        else:
            tp[r] = extract_kind(<const Py_UCS4*>data, n, _acc, dim, vp + r * dim, sp + r * N_SCALARS)
    return vecs, scalars, tokens
