from libc.stdint cimport uint8_t, int64_t

cdef enum:
    CHUNK_PROSE = 0
    CHUNK_CODE = 1

# Greedy pick over chunks already ordered by score: protected ones first, then each
# that fits what is left of the budget. keep[i] is set to 0 or 1.
cdef void select_greedy(const int64_t* order, const int64_t* tokens, const uint8_t* protected,
                        Py_ssize_t n, int64_t budget, uint8_t* keep) noexcept nogil
