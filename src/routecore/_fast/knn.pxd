cdef void dense_dot(const float* m, const float* q, Py_ssize_t n, Py_ssize_t d,
                    float* out) noexcept nogil
cdef Py_ssize_t topk_insert(const float* s, Py_ssize_t n, Py_ssize_t k,
                            long long* ids, float* keys) noexcept nogil
