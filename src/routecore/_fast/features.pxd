cdef enum:
    N_SCALARS = 11

cdef void extract_buf(const Py_UCS4* u, const unsigned char* cls, Py_ssize_t n,
                      int32_t* counts, Py_ssize_t dim, float* vec, float* scalars) noexcept nogil
