from libc.stdint cimport uint64_t, int32_t

cdef enum:
    N_SCRIPTS = 14
    C_LETTER = 0
    C_NUMBER = 1
    C_SPACE = 2
    C_NEWLINE = 3
    C_OTHER = 4

cdef int script_of(Py_UCS4 cp) noexcept nogil
cdef long long count_tokens_buf(const Py_UCS4* u, const unsigned char* cls, Py_ssize_t n) noexcept nogil
