# Feature extraction: hashed n-grams and scalar cues in one walk over the
# text (see _pure.extract, the readable twin; keep the two in step).

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
cdef uint64_t _kw_hash[KW_SIZE]
cdef unsigned char _kw_flag[KW_SIZE]
cdef double _SUBLIN[256]


cdef inline uint64_t fmix64(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53ULL
    x ^= x >> 33
    return x


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
_SUBLIN[0] = 0.0
for _i in range(1, 256):
    _SUBLIN[_i] = 1.0 + log(<double>_i)


cdef inline void _add(int32_t* counts, Py_ssize_t dim, int family, uint64_t h) noexcept nogil:
    cdef uint64_t x = fmix64(h ^ FAMILY_SEEDS[family])
    # The top bit is the sign: colliding features cancel instead of piling up.
    counts[family * dim + <Py_ssize_t>(x & <uint64_t>(dim - 1))] += -1 if (x >> 63) else 1


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


cdef inline void _end_word(WordState* w, int32_t* counts, Py_ssize_t dim) noexcept nogil:
    if w.length == 0:
        return
    _add(counts, dim, 0, w.h)
    if w.has_prev:
        _add(counts, dim, 1, w.prev * GOLDEN + w.h)
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


cdef void extract_buf(const Py_UCS4* u, const unsigned char* cls, Py_ssize_t n,
                      int32_t* counts, Py_ssize_t dim, float* vec,
                      float* scalars) noexcept nogil:
    cdef Py_ssize_t i, b
    cdef Py_UCS4 c, last_nonspace = 0, last_line_char = 0
    cdef uint32_t lc, g0 = 0, g1 = 0, g2 = 0, g3 = 0
    cdef Py_ssize_t glen = 0
    cdef bint space, prev_space = False, line_start = True, content = False
    cdef long long letters = 0, non_ascii_letters = 0, cjk = 0, digits = 0, qmarks = 0
    cdef long long sentences = 0, ticks = 0, indent = 0
    cdef long long lines = 1 if n else 0
    cdef int s, f
    cdef uint64_t h
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
    memset(counts, 0, 4 * dim * sizeof(int32_t))

    for i in range(n):
        c = u[i]
        space = cls[i] == C_SPACE or cls[i] == C_NEWLINE
        lc = 0x20 if space else lower_cp(c)
        if not (space and prev_space):
            g0 = g1
            g1 = g2
            g2 = g3
            g3 = lc
            glen += 1
            if glen >= 3:
                h = ((((FNV_OFFSET ^ g1) * FNV_PRIME) ^ g2) * FNV_PRIME ^ g3) * FNV_PRIME
                _add(counts, dim, 2, h)
            if glen >= 4:
                h = ((((((FNV_OFFSET ^ g0) * FNV_PRIME) ^ g1) * FNV_PRIME ^ g2) * FNV_PRIME)
                     ^ g3) * FNV_PRIME
                _add(counts, dim, 3, h)
        prev_space = space

        if c < 128:
            s = 0
            if cls[i] == C_LETTER or cls[i] == C_NUMBER or c == 0x5F:
                w.h = (w.h ^ lc) * FNV_PRIME
                w.length += 1
            else:
                _end_word(&w, counts, dim)
        else:
            s = script_of(c)
            if u_isalnum(c):
                if s == 10 or s == 9:
                    _end_word(&w, counts, dim)
                    w.h = (FNV_OFFSET ^ lc) * FNV_PRIME
                    w.length = 1
                    _end_word(&w, counts, dim)
                else:
                    w.h = (w.h ^ lc) * FNV_PRIME
                    w.length += 1
            else:
                _end_word(&w, counts, dim)

        if cls[i] == C_LETTER:
            letters += 1
            if c >= 0x80:
                non_ascii_letters += 1
        if s == 10 or s == 9 or s == 8:
            cjk += 1
        if (0x30 <= c <= 0x39) or (c >= 128 and u_isdigit(c)):
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
                if i + 1 == n or cls[i + 1] == C_SPACE or cls[i + 1] == C_NEWLINE:
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
    _end_word(&w, counts, dim)
    if content:
        sentences += 1

    # Sublinear term weights per family, summed per bucket, then L2-normalised.
    cdef double v, norm = 0.0, wt
    cdef int32_t cnt, a
    for b in range(dim):
        v = 0.0
        for f in range(4):
            cnt = counts[f * dim + b]
            if cnt:
                a = -cnt if cnt < 0 else cnt
                wt = FAMILY_WEIGHTS[f] * (_SUBLIN[a] if a < 256 else 1.0 + log(<double>a))
                v += wt if cnt > 0 else -wt
        vec[b] = <float>v
        norm += v * v
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
    scalars[1] = <float>log1p(<double>count_tokens_buf(u, cls, n))
    scalars[2] = <float>(w.code_m / (w.code_m + 4.0 + fw))
    scalars[3] = <float>(w.math_m / (w.math_m + 4.0 + fw))
    scalars[4] = <float>question
    scalars[5] = <float>min(1.0, 0.5 * w.imper)
    scalars[6] = <float>(<double>non_ascii_letters / letters if letters else 0.0)
    scalars[7] = <float>(<double>cjk / n if n else 0.0)
    scalars[8] = <float>(<double>digits / n if n else 0.0)
    scalars[9] = <float>log1p(<double>lines)
    scalars[10] = <float>log1p(<double>sentences)


cdef int32_t* _counts = NULL
cdef Py_ssize_t _counts_cap = 0


def extract(str text, Py_ssize_t dim):
    global _counts, _counts_cap
    if dim < 1 or (dim & (dim - 1)) != 0:
        raise ValueError("dim must be a power of two")
    cdef void* p
    if 4 * dim > _counts_cap:
        p = realloc(_counts, 4 * dim * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        _counts = <int32_t*>p
        _counts_cap = 4 * dim
    cdef Py_ssize_t n = _load(text)
    vec = np.empty(dim, dtype=np.float32)
    scalars = np.empty(N_SCALARS, dtype=np.float32)
    cdef float[::1] vv = vec
    cdef float[::1] ss = scalars
    extract_buf(_ubuf, _cbuf, n, _counts, dim, &vv[0], &ss[0])
    return vec, scalars
