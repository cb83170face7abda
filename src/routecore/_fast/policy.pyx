# The policy kernel: per-model estimates, constraint checks and strategy
# scores in one pass (see _pure.score_models, the readable twin; keep the two
# in step, operation for operation, so both give bit-equal doubles).

from libc.math cimport log10, NAN

cdef enum:
    SC_QUALITY = 0
    SC_COST = 1
    SC_LATENCY = 2
    SC_COMPLEXITY = 3
    SC_DOMAIN = 4
    SC_MULTI = 5
    SC_NONE = 6
    FL_OK = 0
    FL_DENIED = 1
    FL_NOT_ALLOWED = 2
    FL_CAPABILITY = 3
    FL_CONTEXT = 4
    FL_MAX_OUTPUT = 5
    FL_UNHEALTHY = 6
    FL_COST = 7
    FL_LATENCY = 8
    FL_QUALITY = 9
    FL_AT_LIMIT = 10
    NCOLS = 9

assert (_K.SCORE_QUALITY, _K.SCORE_COST, _K.SCORE_LATENCY, _K.SCORE_COMPLEXITY, _K.SCORE_DOMAIN,
        _K.SCORE_MULTI, _K.SCORE_NONE) == (0, 1, 2, 3, 4, 5, 6), "score codes drifted"
assert (_K.FAIL_OK, _K.FAIL_DENIED, _K.FAIL_NOT_ALLOWED, _K.FAIL_CAPABILITY, _K.FAIL_CONTEXT,
        _K.FAIL_MAX_OUTPUT, _K.FAIL_UNHEALTHY, _K.FAIL_COST, _K.FAIL_LATENCY,
        _K.FAIL_QUALITY, _K.FAIL_AT_LIMIT) == tuple(range(11)), "fail codes drifted"
assert _K.N_MODEL_COLS == NCOLS and _K.COL_DEFAULT_Q == 7 and _K.COL_P95 == 8, \
    "table columns drifted"

cdef double QUALITY_TOLERANCE = _K.QUALITY_TOLERANCE
cdef double DECADE_VALUE = _K.DECADE_VALUE


cdef inline cnp.ndarray _opt_c1d(obj, int type_num, object dtype, str name, Py_ssize_t m):
    if obj is None:
        return None
    cdef cnp.ndarray a = _as_c1d(obj, type_num, dtype, name)
    if cnp.PyArray_DIM(a, 0) != m:
        raise ValueError(f"{name} must have one entry per model")
    return a


cdef inline double _lat(double p, double tps, double ot, double it) noexcept nogil:
    # p is for a typical ~512-token answer; scale by the output length and add
    # prefill at ~20x the decode rate.
    cdef double tt = p + (ot - 512.0) / tps * 1000.0
    cdef double floor = 0.2 * p
    return (tt if tt > floor else floor) + it * 50.0 / tps


def score_models(table, probs, codes, boost, overrides, double complexity, long long need,
                 long long in_tokens, long long out_tokens, double max_cost, double max_latency,
                 double min_quality, int strategy, double wq, double wc, double wl,
                 long long out_limit=-1):
    cdef cnp.ndarray t = table
    if (type(table) is not np.ndarray or t.descr.type_num != cnp.NPY_FLOAT64
            or cnp.PyArray_NDIM(t) != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(t)):
        t = np.ascontiguousarray(table, dtype=np.float64)
        if cnp.PyArray_NDIM(t) != 2:
            raise ValueError("table must be two-dimensional")
    cdef Py_ssize_t m = cnp.PyArray_DIM(t, 0), width = cnp.PyArray_DIM(t, 1)
    cdef Py_ssize_t nc = width - NCOLS
    if nc < 0:
        raise ValueError(f"table needs at least {NCOLS} columns")
    if strategy < SC_QUALITY or strategy > SC_NONE:
        raise ValueError(f"unknown strategy code {strategy}")
    cdef cnp.ndarray p = None
    if probs is not None:
        p = _as_c1d(probs, cnp.NPY_FLOAT64, np.float64, "probs")
        if cnp.PyArray_DIM(p, 0) != nc:
            raise ValueError("probs must have one entry per quality column")
    cdef cnp.ndarray cd = _opt_c1d(codes, cnp.NPY_INT8, np.int8, "codes", m)
    cdef cnp.ndarray bo = _opt_c1d(boost, cnp.NPY_FLOAT64, np.float64, "boost", m)
    cdef cnp.ndarray ov = None
    if overrides is not None:
        ov = np.ascontiguousarray(overrides, dtype=np.float64)
        if cnp.PyArray_NDIM(ov) != 2 or cnp.PyArray_DIM(ov, 0) != 2 or cnp.PyArray_DIM(ov, 1) != m:
            raise ValueError("overrides must have shape (2, models)")

    cdef cnp.npy_intp dm = m
    cdef cnp.ndarray q_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray c_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray l_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray s_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray f_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_INT8, 0)
    cdef cnp.ndarray o_a = cnp.PyArray_EMPTY(1, &dm, cnp.NPY_INT64, 0)
    cdef const double* tp = <const double*>cnp.PyArray_DATA(t)
    cdef double* q = <double*>cnp.PyArray_DATA(q_a)
    cdef double* cost = <double*>cnp.PyArray_DATA(c_a)
    cdef double* lat = <double*>cnp.PyArray_DATA(l_a)
    cdef double* score = <double*>cnp.PyArray_DATA(s_a)
    cdef int8_t* fail = <int8_t*>cnp.PyArray_DATA(f_a)
    cdef int64_t* order = <int64_t*>cnp.PyArray_DATA(o_a)
    cdef const double* pp = NULL
    cdef const int8_t* cp = NULL
    cdef const double* bp = NULL
    cdef const double* vp = NULL
    if p is not None:
        pp = <const double*>cnp.PyArray_DATA(p)
    if cd is not None:
        cp = <const int8_t*>cnp.PyArray_DATA(cd)
    if bo is not None:
        bp = <const double*>cnp.PyArray_DATA(bo)
    if ov is not None:
        vp = <const double*>cnp.PyArray_DATA(ov)

    cdef Py_ssize_t i, j, n_ok = 0
    cdef double total = 0.0, x, f, acc, top, target = NAN, cmin, lmin, v
    cdef const double* row
    cdef double* pn = NULL
    cdef bint mixed = False
    cdef int8_t code
    cdef int64_t k
    cdef Py_ssize_t a
    cdef double it = <double>in_tokens, ot = <double>out_tokens
    # The output the model must have room for (context, max output): out_limit when
    # the caller set one, else the expected output.
    cdef double ol = <double>(out_limit if out_limit >= 0 else out_tokens)
    cdef double span = it + ol

    # Quality: the per-category qualities mixed by the normalised probabilities
    # (sequential sums), error rate scaled by complexity, clipped to [0, 1].
    if pp != NULL and nc > 0:
        for j in range(nc):
            total += pp[j]
        if total > 0:
            mixed = True
            pn = <double*>malloc(nc * sizeof(double))
            if pn == NULL:
                raise MemoryError()
            for j in range(nc):
                pn[j] = pp[j] / total
    f = 0.1 + 3.0 * complexity * complexity
    for i in range(m):
        row = tp + i * width
        if mixed:
            acc = 0.0
            for j in range(nc):
                acc += row[NCOLS + j] * pn[j]
            x = acc
        else:
            x = row[7]
        x = 1.0 - (1.0 - x) * f
        if not (0.0 <= x <= 1.0):
            x = 0.0 if x < 0.0 else 1.0
        q[i] = x
        cost[i] = it * row[0] + ot * row[1]
        lat[i] = _lat(row[2], row[3], ot, it)
        if vp != NULL:
            if vp[i] == vp[i]:
                q[i] = vp[i]
            if vp[m + i] == vp[m + i]:
                cost[i] = vp[m + i]
    free(pn)

    # Constraints: the first failing check wins; caller codes carry the name
    # checks (denied 1, not allowed 2, unhealthy 6, at its limit 10). Latency is
    # checked on the p95 estimate (the same shape as the p50 one).
    for i in range(m):
        row = tp + i * width
        code = FL_OK if cp == NULL else cp[i]
        if code == FL_DENIED or code == FL_NOT_ALLOWED:
            pass
        elif need and ((<long long>row[6]) & need) != need:
            code = FL_CAPABILITY
        elif span > row[4]:
            code = FL_CONTEXT
        elif ol > row[5]:
            code = FL_MAX_OUTPUT
        elif code == FL_UNHEALTHY or code == FL_AT_LIMIT:
            pass
        elif cost[i] > max_cost:
            code = FL_COST
        elif max_latency == max_latency and _lat(row[8], row[3], ot, it) > max_latency:
            code = FL_LATENCY
        elif q[i] < min_quality:
            code = FL_QUALITY
        else:
            code = FL_OK
        fail[i] = code
        if code == FL_OK:
            order[n_ok] = i
            n_ok += 1

    # Scores (higher is better); the maxima / minima run over eligible models.
    if n_ok == 0:
        for i in range(m):
            score[i] = q[i]
    elif strategy == SC_QUALITY:
        top = cost[order[0]]
        for j in range(1, n_ok):
            if cost[order[j]] > top:
                top = cost[order[j]]
        if 1e-12 > top:
            top = 1e-12
        for i in range(m):
            score[i] = q[i] - 1e-6 * cost[i] / top
    elif strategy == SC_COST or strategy == SC_LATENCY:
        if min_quality == min_quality:
            target = min_quality
        else:
            target = q[order[0]]
            for j in range(1, n_ok):
                if q[order[j]] > target:
                    target = q[order[j]]
            target = target - QUALITY_TOLERANCE
        row = cost if strategy == SC_COST else lat
        top = row[order[0]]
        for j in range(1, n_ok):
            if row[order[j]] > top:
                top = row[order[j]]
        if 1e-12 > top:
            top = 1e-12
        for i in range(m):
            score[i] = 2.0 - row[i] / top if q[i] >= target - 1e-12 else q[i]
    elif strategy == SC_MULTI or strategy == SC_DOMAIN:
        # log10 units relative to the cheapest / fastest eligible model; the
        # floors keep a free or instant model finite. score holds log10(cost)
        # until the last loop.
        for i in range(m):
            score[i] = log10(cost[i] if cost[i] > 1e-12 else 1e-12)
        cmin = score[order[0]]
        lmin = log10(lat[order[0]] if lat[order[0]] > 1e-3 else 1e-3)
        for j in range(1, n_ok):
            i = order[j]
            if score[i] < cmin:
                cmin = score[i]
            v = log10(lat[i] if lat[i] > 1e-3 else 1e-3)
            if v < lmin:
                lmin = v
        wc = wc * DECADE_VALUE
        wl = wl * DECADE_VALUE
        for i in range(m):
            v = log10(lat[i] if lat[i] > 1e-3 else 1e-3)
            score[i] = wq * q[i] - wc * (score[i] - cmin) - wl * (v - lmin)
        if strategy == SC_DOMAIN and bp != NULL:
            for i in range(m):
                if bp[i] == bp[i]:
                    score[i] = bp[i]
    else:  # complexity tiers (a boost per model in a tier), or none
        for i in range(m):
            score[i] = q[i]
            if strategy == SC_COMPLEXITY and bp != NULL and bp[i] > score[i]:
                score[i] = bp[i]

    # Eligible models by score, descending; a stable insertion sort keeps
    # registry order on ties.
    for j in range(1, n_ok):
        k = order[j]
        v = score[k]
        a = j
        while a > 0 and score[order[a - 1]] < v:
            order[a] = order[a - 1]
            a -= 1
        order[a] = k
    return q_a, c_a, l_a, s_a, f_a, o_a[:n_ok], target


def pareto_dominators(q, cost, lat, eligible):
    """For each eligible model, the first eligible model (by index) that is at least as
    good on quality, cost and latency and strictly better on one; -1 when none dominates
    it or it is not eligible. The explanation of a multi-objective decision."""
    cdef cnp.ndarray qa = _as_c1d(q, cnp.NPY_FLOAT64, np.float64, "q")
    cdef Py_ssize_t m = cnp.PyArray_DIM(qa, 0), a, b
    cdef cnp.ndarray ca = _opt_c1d(cost, cnp.NPY_FLOAT64, np.float64, "cost", m)
    cdef cnp.ndarray la = _opt_c1d(lat, cnp.NPY_FLOAT64, np.float64, "lat", m)
    cdef cnp.ndarray el = _opt_c1d(eligible, cnp.NPY_UINT8, np.uint8, "eligible", m)
    if ca is None or la is None or el is None:
        raise ValueError("cost, lat and eligible are required")
    cdef cnp.npy_intp dims = m
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &dims, cnp.NPY_INT64, 0)
    cdef const double* qp = <const double*>cnp.PyArray_DATA(qa)
    cdef const double* cp = <const double*>cnp.PyArray_DATA(ca)
    cdef const double* lp = <const double*>cnp.PyArray_DATA(la)
    cdef const uint8_t* ep = <const uint8_t*>cnp.PyArray_DATA(el)
    cdef int64_t* op = <int64_t*>cnp.PyArray_DATA(out)
    cdef double qb, cb, lb
    with nogil:
        for b in range(m):
            op[b] = -1
            if not ep[b]:
                continue
            qb = qp[b]
            cb = cp[b]
            lb = lp[b]
            for a in range(m):
                if (ep[a] and qp[a] >= qb and cp[a] <= cb and lp[a] <= lb
                        and (qp[a] > qb or cp[a] < cb or lp[a] < lb)):
                    op[b] = a
                    break
    return out
