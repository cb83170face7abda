# Brute-force similarity search: the oracle for FAISS and the fast path for
# small indexes, where FAISS's per-call overhead dominates.

cdef void dense_dot(const float* m, const float* q, Py_ssize_t n, Py_ssize_t d,
                    float* out) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef const float* row
    cdef float a0, a1, a2, a3
    for i in range(n):
        row = m + i * d
        # Four accumulators break the add dependency chain (about 3x faster).
        a0 = a1 = a2 = a3 = 0.0
        j = 0
        while j + 4 <= d:
            a0 += row[j] * q[j]
            a1 += row[j + 1] * q[j + 1]
            a2 += row[j + 2] * q[j + 2]
            a3 += row[j + 3] * q[j + 3]
            j += 4
        while j < d:
            a0 += row[j] * q[j]
            j += 1
        out[i] = (a0 + a1) + (a2 + a3)


cdef inline float _key(float x) noexcept nogil:
    # NaN ranks last, like -inf (x != x only for NaN).
    return -INFINITY if x != x else x


cdef Py_ssize_t topk_insert(const float* s, Py_ssize_t n, Py_ssize_t k,
                            long long* ids, float* keys) noexcept nogil:
    """Keep the k best (key desc, id asc) in a sorted buffer; returns the count.

    Ids arrive in increasing order, so an equal key never displaces an earlier
    id: a strict > comparison gives the lower-id tie break for free.
    """
    cdef Py_ssize_t m = 0, i, p
    cdef float x
    if k <= 0:
        return 0
    for i in range(n):
        x = _key(s[i])
        if m == k:
            if not (x > keys[k - 1]):
                continue
            p = k - 1
        else:
            p = m
            m += 1
        while p > 0 and x > keys[p - 1]:
            keys[p] = keys[p - 1]
            ids[p] = ids[p - 1]
            p -= 1
        keys[p] = x
        ids[p] = i
    return m


def features_dense_dot(const float[:, ::1] matrix, const float[::1] query):
    cdef Py_ssize_t n = matrix.shape[0], d = matrix.shape[1]
    if query.shape[0] != d:
        raise ValueError("query length does not match the matrix width")
    out = np.empty(n, dtype=np.float32)
    cdef float[::1] o = out
    if n and d:
        dense_dot(&matrix[0, 0], &query[0], n, d, &o[0])
    elif n:
        o[:] = 0
    return out


def top_k(const float[::1] scores, Py_ssize_t k):
    cdef Py_ssize_t n = scores.shape[0]
    if k > n:
        k = n
    if k < 0:
        k = 0
    ids = np.empty(k, dtype=np.int64)
    vals = np.empty(k, dtype=np.float32)
    if k == 0:
        return ids, vals
    cdef long long[::1] iv = ids
    cdef float[::1] vv = vals
    cdef Py_ssize_t i
    if k > 64:
        # Insertion is O(n*k) at worst; for large k a stable sort is cheaper.
        order = np.lexsort((np.arange(n), -np.where(np.isnan(scores), -np.inf,
                                                      np.asarray(scores, dtype=np.float64))))[:k]
        ids[:] = order
        vals[:] = np.asarray(scores)[order]
        return ids, vals
    with nogil:
        topk_insert(&scores[0], n, k, &iv[0], &vv[0])
        for i in range(k):
            vv[i] = scores[iv[i]]
    return ids, vals


def max_by_label(const long long[::1] ids, const float[::1] sims, const int[::1] labels,
                 Py_ssize_t n_labels):
    cdef Py_ssize_t m = ids.shape[0], n = labels.shape[0], i
    cdef long long h
    cdef int lab
    if sims.shape[0] != m:
        raise ValueError("ids and sims differ in length")
    if n_labels < 0:
        raise ValueError("n_labels must be >= 0")
    out = np.full(n_labels, -1.0, dtype=np.float32)
    cdef float[::1] o = out
    with nogil:
        for i in range(m):
            h = ids[i]
            if 0 <= h < n:
                lab = labels[h]
                if 0 <= lab < n_labels and sims[i] > o[lab]:
                    o[lab] = sims[i]
    return out


cdef inline cnp.ndarray _as_c1d(obj, int type_num, object dtype, str name):
    """obj as a 1-D C-contiguous array of type_num (no copy when it already is)."""
    cdef cnp.ndarray a
    if (type(obj) is np.ndarray and (<cnp.ndarray>obj).descr.type_num == type_num
            and cnp.PyArray_NDIM(<cnp.ndarray>obj) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>obj)):
        return <cnp.ndarray>obj
    a = np.ascontiguousarray(obj, dtype=dtype)
    if cnp.PyArray_NDIM(a) != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return a


def top_k_max_by_label(scores, labels, Py_ssize_t n_labels, Py_ssize_t k):
    # max_by_label(*top_k(scores, k), labels, n_labels) in one call: no
    # intermediate arrays, no buffer acquisition (raw ndarray data).
    if n_labels < 0:
        raise ValueError("n_labels must be >= 0")
    cdef cnp.ndarray s = _as_c1d(scores, cnp.NPY_FLOAT32, np.float32, "scores")
    cdef cnp.ndarray lab = _as_c1d(labels, cnp.NPY_INT32, np.int32, "labels")
    cdef Py_ssize_t n = cnp.PyArray_DIM(s, 0), i, m
    if cnp.PyArray_DIM(lab, 0) != n:
        raise ValueError("scores and labels differ in length")
    cdef cnp.npy_intp nl = n_labels
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &nl, cnp.NPY_FLOAT32, 0)
    cdef float* o = <float*>cnp.PyArray_DATA(out)
    cdef const float* sp = <const float*>cnp.PyArray_DATA(s)
    cdef const int32_t* lp = <const int32_t*>cnp.PyArray_DATA(lab)
    cdef long long ids_stack[64]
    cdef float keys_stack[64]
    cdef long long* ids = ids_stack
    cdef float* keys = keys_stack
    cdef int32_t l
    cdef float x
    for i in range(n_labels):
        o[i] = -1.0
    if k < 0:
        k = 0
    if k >= n:
        # Every row is a hit: a per-label max over all of them.
        for i in range(n):
            l = lp[i]
            x = sp[i]
            if 0 <= l < n_labels and x > o[l]:
                o[l] = x
        return out
    if k > 64:
        ids = <long long*>malloc(k * sizeof(long long))
        keys = <float*>malloc(k * sizeof(float))
        if ids == NULL or keys == NULL:
            free(ids)
            free(keys)
            raise MemoryError()
    m = topk_insert(sp, n, k, ids, keys)
    for i in range(m):
        l = lp[ids[i]]
        x = sp[ids[i]]
        if 0 <= l < n_labels and x > o[l]:
            o[l] = x
    if ids != ids_stack:
        free(ids)
        free(keys)
    return out
