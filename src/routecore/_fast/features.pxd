cdef enum:
    N_SCALARS = 11
    MAX_DIM = 1 << 30

cdef long long extract_kind(const ucs_t* u, Py_ssize_t n, int32_t* acc, Py_ssize_t dim,
                            float* vec, float* scalars) noexcept nogil
