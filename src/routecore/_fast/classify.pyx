# The classifier's combination step: keyword and regex evidence, embedding
# similarities, the sharpened category distribution, its confidence and the
# complexity prior in one call (see _pure.combine_categories, the readable
# twin; keep the two in step, operation for operation).

from libc.math cimport exp

cdef double _LOG_20 = log1p(20.0)
cdef double _LOG_4000 = log1p(4000.0)


cdef inline double _pymin1(double x) noexcept nogil:
    # Python's min(1.0, x): 1.0 unless x < 1.0 (so NaN gives 1.0).
    return x if x < 1.0 else 1.0


cdef inline double _pymax0(double x) noexcept nogil:
    # Python's max(0.0, x): 0.0 unless x > 0.0 (so NaN gives 0.0).
    return x if x > 0.0 else 0.0


def combine_categories(sims, double w, hits, owners, hard_weight, regex, base,
                       double log_tokens, double math_score, double code_score, bint easy):
    cdef cnp.ndarray b = _as_c1d(base, cnp.NPY_FLOAT64, np.float64, "base")
    cdef Py_ssize_t n = cnp.PyArray_DIM(b, 0), t, i, c
    if n < 1:
        raise ValueError("base must have at least one category")
    cdef cnp.ndarray h = _as_c1d(hits, cnp.NPY_INT32, np.int32, "hits")
    cdef Py_ssize_t nt = cnp.PyArray_DIM(h, 0)
    cdef cnp.ndarray hw = _as_c1d(hard_weight, cnp.NPY_FLOAT64, np.float64, "hard_weight")
    if cnp.PyArray_DIM(hw, 0) != nt:
        raise ValueError("hard_weight must have one entry per hit")
    cdef cnp.ndarray ow = owners
    if (type(owners) is not np.ndarray or ow.descr.type_num != cnp.NPY_FLOAT64
            or cnp.PyArray_NDIM(ow) != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(ow)):
        ow = np.ascontiguousarray(owners, dtype=np.float64)
    if cnp.PyArray_NDIM(ow) != 2 or cnp.PyArray_DIM(ow, 0) != nt or cnp.PyArray_DIM(ow, 1) != n:
        raise ValueError("owners must have shape (hits, categories)")
    cdef cnp.ndarray s = None, rx = None
    if sims is not None:
        s = _as_c1d(sims, cnp.NPY_FLOAT32, np.float32, "sims")
        if cnp.PyArray_DIM(s, 0) != n:
            raise ValueError("sims must have one entry per category")
    if regex is not None:
        rx = _as_c1d(regex, cnp.NPY_FLOAT64, np.float64, "regex")
        if cnp.PyArray_DIM(rx, 0) != n:
            raise ValueError("regex must have one entry per category")
    cdef cnp.npy_intp dn = n
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &dn, cnp.NPY_FLOAT64, 0)
    cdef double* probs = <double*>cnp.PyArray_DATA(out)
    cdef const double* bp = <const double*>cnp.PyArray_DATA(b)
    cdef const int32_t* hp = <const int32_t*>cnp.PyArray_DATA(h)
    cdef const double* hwp = <const double*>cnp.PyArray_DATA(hw)
    cdef const double* op = <const double*>cnp.PyArray_DATA(ow)
    cdef const float* sp = NULL
    cdef const double* rp = NULL
    if s is not None:
        sp = <const float*>cnp.PyArray_DATA(s)
    if rx is not None:
        rp = <const double*>cnp.PyArray_DATA(rx)
    cdef double* ev = <double*>malloc(2 * n * sizeof(double))
    if ev == NULL:
        raise MemoryError()
    cdef double* comb = ev + n
    cdef double hard = 0.0, x, top, scale, total, mx, conf = 0.0, second, cx, length
    cdef Py_ssize_t best
    # Keyword votes (distinct phrases found, per owning category), regex votes
    # (1.5 per matching pattern), saturating: 1 - exp(-0.7 * hits).
    for c in range(n):
        ev[c] = 0.0
    for t in range(nt):
        if hp[t] > 0:
            hard += hwp[t]
            for c in range(n):
                ev[c] += op[t * n + c]
    for c in range(n):
        if rp != NULL:
            ev[c] += 1.5 * rp[c]
        ev[c] = 1.0 - exp(-0.7 * ev[c])
    # Embedding similarities, clipped to [0, 1] and rescaled so the best match
    # weighs like a strong rule hit, blended with the rule evidence.
    for c in range(n):
        comb[c] = 0.0
    if sp != NULL:
        top = 0.0
        for c in range(n):
            x = <double>sp[c]
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            comb[c] = x
            if c == 0 or x > top:
                top = x
        scale = w * _pymin1(0.5 + top) / top if top > 0 else 0.0
        for c in range(n):
            comb[c] = comb[c] * scale
    if w < 1.0:
        for c in range(n):
            comb[c] = comb[c] + (1.0 - w) * ev[c]
    total = 0.0
    for c in range(n):
        total += comb[c]
    cdef bint confident = total > 0.0
    cdef bint soft = False
    best = 0
    if not confident and sp != NULL:
        # No weighted evidence (rule mode, no keyword or pattern hit): the
        # similarities choose at a soft temperature, so the distribution stays
        # spread and the confidence low, instead of naming the first category.
        mx = 0.0
        for c in range(n):
            x = <double>sp[c]
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            comb[c] = x
            if x > mx:
                mx = x
        soft = mx > 0.0
    if soft:
        total = 0.0
        for c in range(n):
            comb[c] = exp((comb[c] - mx) / 0.5)
            total += comb[c]
        for c in range(n):
            probs[c] = comb[c] / total
    elif total <= 0.0:
        for c in range(n):
            probs[c] = 1.0 / n
    else:
        # Sharpen into a distribution; the temperature keeps a runner-up visible.
        mx = comb[0]
        for c in range(1, n):
            if comb[c] > mx:
                mx = comb[c]
        total = 0.0
        for c in range(n):
            comb[c] = exp((comb[c] - mx) / 0.15)
            total += comb[c]
        for c in range(n):
            probs[c] = comb[c] / total
    for c in range(1, n):
        if probs[c] > probs[best]:
            best = c
    if confident or soft:
        second = 0.0
        if n > 1:
            second = -INFINITY
            for c in range(n):
                if c != best and probs[c] > second:
                    second = probs[c]
        conf = _pymin1(0.5 * probs[best] + 0.5 * (probs[best] - second))
    free(ev)
    # Complexity: the categories' base complexity, length (saturating at ~4k
    # tokens), hard-request markers, math and code cues; halved on easy openers.
    x = 0.0
    for c in range(n):
        x += probs[c] * bp[c]
    length = _pymin1(_pymax0((log_tokens - _LOG_20) / (_LOG_4000 - _LOG_20)))
    cx = 0.45 * x + 0.2 * length + 0.3 * _pymin1(hard / 3.0)
    cx += 0.05 * _pymin1(math_score)
    cx += 0.03 * _pymin1(code_score)
    if easy:
        cx *= 0.5
    cx = _pymin1(_pymax0(cx))
    return best, conf, cx, out
