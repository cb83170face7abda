from libc.stdint cimport uint8_t, uint16_t, uint64_t, int32_t

cdef enum:
    N_SCRIPTS = 14
    C_LETTER = 0
    C_NUMBER = 1
    C_SPACE = 2
    C_NEWLINE = 3
    C_OTHER = 4
    # Per-code-point flags (str.isalpha, isnumeric, isspace, isalnum or "_", isdigit).
    F_LETTER = 1
    F_NUMBER = 2
    F_SPACE = 4
    F_WORD = 8
    F_DIGIT = 16

# A str's storage: 1, 2 or 4 bytes per code point (PEP 393 kinds).
ctypedef fused ucs_t:
    uint8_t
    uint16_t
    Py_UCS4

cdef int script_of(Py_UCS4 cp) noexcept nogil
cdef long long count_tokens_kind(const ucs_t* u, Py_ssize_t n) noexcept nogil
cdef long long count_tokens_str(str text) except -1
