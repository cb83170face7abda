# Extractive prompt compression: split context into chunks, score each chunk
# against the question with the static embedding, pick the best within a token
# budget (see _pure.compress, the readable twin and the definition; keep the
# two in step).

cdef extern from "Python.h":
    str PyUnicode_Substring(str text, Py_ssize_t start, Py_ssize_t end)


cdef inline bint _cws(Py_UCS4 c) noexcept nogil:
    # ASCII whitespace: space, tab, LF, VT, FF, CR.
    return c == 32 or (9 <= c <= 13)


cdef inline bint _closer(Py_UCS4 c) noexcept nogil:
    return c == 41 or c == 93 or c == 34 or c == 39 or c == 0x201D or c == 0x2019


cdef inline Py_ssize_t _cz_skip_ws(const ucs_t* u, Py_ssize_t k, Py_ssize_t b) noexcept nogil:
    while k < b and _cws(u[k]):
        k += 1
    return k


cdef inline Py_ssize_t _cz_line_end(const ucs_t* u, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n:
        if u[i] == 10:
            return i + 1
        i += 1
    return n


cdef inline bint _cz_is_fence(const ucs_t* u, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (u[i] == 32 or u[i] == 9):
        i += 1
    return i + 3 <= n and u[i] == 96 and u[i + 1] == 96 and u[i + 2] == 96


cdef inline void _cz_emit(int64_t* out, Py_ssize_t* m, Py_ssize_t s, Py_ssize_t e,
                       int64_t kind) noexcept nogil:
    # out NULL: only count (the first of two passes).
    if out != NULL:
        out[3 * m[0]] = s
        out[3 * m[0] + 1] = e
        out[3 * m[0] + 2] = kind
    m[0] += 1


cdef void _cz_piece(const ucs_t* u, Py_ssize_t s, Py_ssize_t e, Py_ssize_t max_chars,
                 int64_t* out, Py_ssize_t* m) noexcept nogil:
    cdef Py_ssize_t cut, w
    while e - s > max_chars:
        cut = -1
        w = s + max_chars - 1
        while w > s:
            if _cws(u[w]):
                cut = w
                break
            w -= 1
        cut = s + max_chars if cut < 0 else _cz_skip_ws(u, cut, e)
        _cz_emit(out, m, s, cut, CHUNK_PROSE)
        s = cut
    if s < e:
        _cz_emit(out, m, s, e, CHUNK_PROSE)


cdef void _cz_sentences(const ucs_t* u, Py_ssize_t a, Py_ssize_t b, Py_ssize_t max_chars,
                     int64_t* out, Py_ssize_t* m) noexcept nogil:
    cdef Py_ssize_t start = a, k = a, e, j
    cdef Py_UCS4 c
    cdef bint cjk
    while k < b:
        c = u[k]
        e = -1
        if c == 10:
            e = _cz_skip_ws(u, k + 1, b)
        else:
            cjk = c == 0x3002 or c == 0xFF01 or c == 0xFF1F
            if cjk or c == 46 or c == 33 or c == 63:
                j = k + 1
                while j < b and _closer(u[j]):
                    j += 1
                if cjk or j == b:
                    e = _cz_skip_ws(u, j, b)
                elif _cws(u[j]):
                    e = _cz_skip_ws(u, j, b)
                    if e < b and 97 <= u[e] <= 122:
                        e = -1  # "e.g. the": an abbreviation, not a sentence end
        if e >= 0:
            _cz_piece(u, start, e, max_chars, out, m)
            start = k = e
        else:
            k += 1
    if start < b:
        _cz_piece(u, start, b, max_chars, out, m)


cdef inline void _cz_flush(const ucs_t* u, Py_ssize_t a, Py_ssize_t b, Py_ssize_t max_chars,
                        int64_t* out, Py_ssize_t* m) noexcept nogil:
    if b - a <= max_chars:
        _cz_emit(out, m, a, b, CHUNK_PROSE)
    else:
        _cz_sentences(u, a, b, max_chars, out, m)


cdef Py_ssize_t _cz_split(const ucs_t* u, Py_ssize_t n, Py_ssize_t max_chars,
                       int64_t* out) noexcept nogil:
    cdef Py_ssize_t m = 0, i = 0, j, k, q, end, para = -1
    cdef bint has_content = False, closed = False, blank
    while i < n:
        j = _cz_line_end(u, i, n)
        if _cz_is_fence(u, i, n):
            if para >= 0:
                _cz_flush(u, para, i, max_chars, out, &m)
                para = -1
            end = n
            k = j
            while k < n:
                q = _cz_line_end(u, k, n)
                if _cz_is_fence(u, k, n):
                    end = q
                    break
                k = q
            _cz_emit(out, &m, i, end, CHUNK_CODE)
            i = end
            continue
        if para < 0:
            para = i
            has_content = False
            closed = False
        blank = True
        for k in range(i, j):
            if not _cws(u[k]):
                blank = False
                break
        if blank:
            closed = closed or has_content
        else:
            if closed:
                _cz_flush(u, para, i, max_chars, out, &m)
                para = i
                closed = False
            has_content = True
        i = j
    if para >= 0:
        _cz_flush(u, para, n, max_chars, out, &m)
    return m


cdef Py_ssize_t _cz_split_str(str text, Py_ssize_t max_chars, int64_t* out) except -1:
    PyUnicode_READY(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    with nogil:
        if kind == 1:
            return _cz_split(<const uint8_t*>data, n, max_chars, out)
        if kind == 2:
            return _cz_split(<const uint16_t*>data, n, max_chars, out)
        return _cz_split(<const Py_UCS4*>data, n, max_chars, out)


def split_chunks(str text not None, Py_ssize_t max_chars):
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    cdef Py_ssize_t m = _cz_split_str(text, max_chars, NULL)
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = 3
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64, 0)
    if m:
        _cz_split_str(text, max_chars, <int64_t*>cnp.PyArray_DATA(out))
    return out


cdef cnp.ndarray _cz_spans(spans, Py_ssize_t n):
    cdef cnp.ndarray s = np.ascontiguousarray(spans, dtype=np.int64)
    if cnp.PyArray_NDIM(s) != 2 or cnp.PyArray_DIM(s, 1) != 3:
        raise ValueError("spans must have shape (n, 3)")
    cdef const int64_t* p = <const int64_t*>cnp.PyArray_DATA(s)
    cdef Py_ssize_t r
    for r in range(cnp.PyArray_DIM(s, 0)):
        if p[3 * r] < 0 or p[3 * r + 1] < p[3 * r] or p[3 * r + 1] > n:
            raise ValueError("spans must lie within the text")
    return s


def chunk_stats(EmbedTable table not None, str text not None, spans, query,
                Py_ssize_t max_tokens):
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    cdef cnp.ndarray q = np.ascontiguousarray(query, dtype=np.float32)
    if cnp.PyArray_NDIM(q) != 1 or cnp.PyArray_DIM(q, 0) != table.dim:
        raise ValueError("query must have one value per embedding dimension")
    cdef cnp.ndarray s = _cz_spans(spans, PyUnicode_GET_LENGTH(text))
    cdef cnp.npy_intp nc = cnp.PyArray_DIM(s, 0)
    cdef cnp.ndarray scores = cnp.PyArray_ZEROS(1, &nc, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray tokens = cnp.PyArray_ZEROS(1, &nc, cnp.NPY_INT64, 0)
    cdef const int64_t* sp = <const int64_t*>cnp.PyArray_DATA(s)
    cdef float* sc = <float*>cnp.PyArray_DATA(scores)
    cdef int64_t* tk = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef const float* qv = <const float*>cnp.PyArray_DATA(q)
    cdef Py_ssize_t d = table.dim, r, j, k, a, b
    cdef int32_t* ids = <int32_t*>malloc((max_tokens + 1) * sizeof(int32_t))
    cdef float* acc = <float*>malloc(d * sizeof(float))
    cdef double norm, dot
    cdef str sub
    if ids == NULL or acc == NULL:
        free(ids)
        free(acc)
        raise MemoryError()
    try:
        for r in range(nc):
            a = <Py_ssize_t>sp[3 * r]
            b = <Py_ssize_t>sp[3 * r + 1]
            sub = PyUnicode_Substring(text, a, b)
            tk[r] = count_tokens_str(sub)
            if sp[3 * r + 2] != CHUNK_PROSE:
                continue
            sub = _norm(sub)
            k = _ids_str(table, sub, ids, _cap(sub, max_tokens)) if len(sub) else 0
            if k == 0:
                continue
            with nogil:
                # As embed: the sum of the rows (float adds vectorise), then the cosine in
                # double; the mean's 1/k cancels.
                memset(acc, 0, d * sizeof(float))
                _sum_rows(table, ids, k, acc)
                norm = 0.0
                dot = 0.0
                for j in range(d):
                    norm += <double>acc[j] * acc[j]
                    dot += <double>acc[j] * qv[j]
                if norm > 0.0:
                    sc[r] = <float>(dot / sqrt(norm))
    finally:
        free(ids)
        free(acc)
    return scores, tokens


cdef void select_greedy(const int64_t* order, const int64_t* tokens, const uint8_t* protected,
                        Py_ssize_t n, int64_t budget, uint8_t* keep) noexcept nogil:
    cdef Py_ssize_t i, o
    cdef int64_t left = budget
    for i in range(n):
        keep[i] = 0
        if protected[i]:
            keep[i] = 1
            left -= tokens[i]
    for i in range(n):
        o = order[i]
        if not protected[o] and tokens[o] <= left:
            keep[o] = 1
            left -= tokens[o]


def select_chunks(scores, tokens, protected, int64_t budget):
    cdef cnp.ndarray sc = np.ascontiguousarray(scores, dtype=np.float64)
    cdef cnp.ndarray tk = np.ascontiguousarray(tokens, dtype=np.int64)
    cdef cnp.ndarray pr = np.ascontiguousarray(protected, dtype=np.uint8)
    if (cnp.PyArray_NDIM(sc) != 1 or cnp.PyArray_NDIM(tk) != 1 or cnp.PyArray_NDIM(pr) != 1
            or cnp.PyArray_DIM(tk, 0) != cnp.PyArray_DIM(sc, 0)
            or cnp.PyArray_DIM(pr, 0) != cnp.PyArray_DIM(sc, 0)):
        raise ValueError("scores, tokens and protected must be 1-D of one length")
    # numpy's stable sort, as the twin: ties keep the earlier chunk, NaN goes last.
    cdef cnp.ndarray order = np.ascontiguousarray(np.argsort(-sc, kind="stable"), dtype=np.int64)
    cdef cnp.npy_intp n = cnp.PyArray_DIM(sc, 0)
    cdef cnp.ndarray keep = cnp.PyArray_ZEROS(1, &n, cnp.NPY_UINT8, 0)
    with nogil:
        select_greedy(<const int64_t*>cnp.PyArray_DATA(order), <const int64_t*>cnp.PyArray_DATA(tk),
                      <const uint8_t*>cnp.PyArray_DATA(pr), n, budget,
                      <uint8_t*>cnp.PyArray_DATA(keep))
    return keep
