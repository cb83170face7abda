# Token estimate: one walk over the pre-tokenizer's runs (see _pure.count_tokens,
# the readable twin; keep the two in step).

cdef extern from "Python.h":
    # The interpreter's own Unicode tables: the same ones str.isalpha() reads,
    # so C and the pure twin classify every code point alike.
    bint u_isalpha "Py_UNICODE_ISALPHA"(Py_UCS4 ch) nogil
    bint u_isnumeric "Py_UNICODE_ISNUMERIC"(Py_UCS4 ch) nogil
    bint u_isdigit "Py_UNICODE_ISDIGIT"(Py_UCS4 ch) nogil
    bint u_isalnum "Py_UNICODE_ISALNUM"(Py_UCS4 ch) nogil
    bint u_isspace "Py_UNICODE_ISSPACE"(Py_UCS4 ch) nogil
    bint u_isupper "Py_UNICODE_ISUPPER"(Py_UCS4 ch) nogil
    bint u_islower "Py_UNICODE_ISLOWER"(Py_UCS4 ch) nogil
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

# One reusable scratch buffer (code points + their classes). Every entry point
# holds the GIL, so a module-level buffer is safe and saves a malloc per call.
cdef Py_UCS4* _ubuf = NULL
cdef unsigned char* _cbuf = NULL
cdef Py_ssize_t _cap = 0


cdef int script_of(Py_UCS4 cp) noexcept nogil:
    if cp < 0x80:
        return 0
    if cp < 0x250 or 0x1E00 <= cp <= 0x1EFF:
        return 1
    if 0x370 <= cp <= 0x3FF or 0x1F00 <= cp <= 0x1FFF:
        return 2
    if 0x400 <= cp <= 0x52F:
        return 3
    if 0x590 <= cp <= 0x5FF:
        return 4
    if (0x600 <= cp <= 0x6FF or 0x750 <= cp <= 0x77F or 0xFB50 <= cp <= 0xFDFF
            or 0xFE70 <= cp <= 0xFEFF):
        return 5
    if 0x900 <= cp <= 0xDFF:
        return 6
    if 0xE00 <= cp <= 0xEFF:
        return 7
    if 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F or 0xAC00 <= cp <= 0xD7AF:
        return 8
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF65 <= cp <= 0xFF9F:
        return 9
    if (0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x3FFFF):
        return 10
    if 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFF64:
        return 11
    if cp >= 0x10000:
        return 12
    return 13


cdef inline unsigned char _cls(Py_UCS4 c) noexcept nogil:
    if u_isalpha(c):
        return C_LETTER
    if u_isnumeric(c):
        return C_NUMBER
    if c == 10 or c == 13:
        return C_NEWLINE
    if u_isspace(c):
        return C_SPACE
    return C_OTHER


cdef unsigned char _ASCII_CLS[128]
for _i in range(128):
    _ASCII_CLS[_i] = _cls(<Py_UCS4>_i)


cdef Py_ssize_t _load(str text) except -1:
    """Copy the str into the UCS4 scratch buffer and classify each code point."""
    global _ubuf, _cbuf, _cap
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef Py_ssize_t i, cap
    cdef void* p
    if n > _cap:
        cap = max(n, 2 * _cap, 4096)
        p = realloc(_ubuf, cap * sizeof(Py_UCS4))
        if p == NULL:
            raise MemoryError()
        _ubuf = <Py_UCS4*>p
        p = realloc(_cbuf, cap)
        if p == NULL:
            raise MemoryError()
        _cbuf = <unsigned char*>p
        _cap = cap
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_UCS4 c
    if kind == 1:
        for i in range(n):
            _ubuf[i] = (<const uint8_t*>data)[i]
    elif kind == 2:
        for i in range(n):
            _ubuf[i] = (<const uint16_t*>data)[i]
    else:
        memcpy(_ubuf, data, n * sizeof(Py_UCS4))
    for i in range(n):
        c = _ubuf[i]
        _cbuf[i] = _ASCII_CLS[c] if c < 128 else _cls(c)
    return n


cdef long long count_tokens_buf(const Py_UCS4* u, const unsigned char* cls,
                                Py_ssize_t n) noexcept nogil:
    if n == 0:
        return 0
    cdef long long milli = 0, acc, camel, length
    cdef Py_ssize_t i = 0, j, q, last_nl, trail, end, asc
    cdef unsigned char k
    cdef Py_UCS4 cp, c
    cdef int s
    while i < n:
        k = cls[i]
        cp = u[i]
        j = i + 1
        if k == C_LETTER:
            s = script_of(cp)
            if s <= 1:
                acc = 1 if cp >= 0x80 else 0
                camel = 0
                while j < n and cls[j] == C_LETTER and script_of(u[j]) <= 1:
                    c = u[j]
                    if c < 128:
                        if 0x41 <= c <= 0x5A and u_islower(u[j - 1]):
                            camel += 1
                    else:
                        acc += 1
                        if u_isupper(c) and u_islower(u[j - 1]):
                            camel += 1
                    j += 1
                length = j - i
                milli += WORD_BASE_MILLI + ACC_MILLI * acc + CAMEL_MILLI * camel
                for q in range(N_KNEES):
                    if length > WORD_KNEES[q]:
                        milli += WORD_SLOPES_MILLI[q] * (length - WORD_KNEES[q])
            else:
                while j < n and cls[j] == C_LETTER and script_of(u[j]) == s:
                    j += 1
                milli += SCRIPT_RUN_MILLI[s] + SCRIPT_CHAR_MILLI[s] * (j - i)
        elif k == C_NUMBER:
            while j < n and cls[j] == C_NUMBER:
                j += 1
            milli += DIGIT_GROUP_MILLI * ((j - i + 2) // 3)
        elif k == C_SPACE or k == C_NEWLINE:
            last_nl = i if k == C_NEWLINE else -1
            while j < n and (cls[j] == C_SPACE or cls[j] == C_NEWLINE):
                if cls[j] == C_NEWLINE:
                    last_nl = j
                j += 1
            if last_nl >= 0:
                milli += NEWLINE_MILLI
                trail = j - last_nl - 1
            else:
                trail = j - i
            if trail > 0:
                if trail > 1 or not (j < n and cls[j] != C_NUMBER):
                    milli += SPACE_MILLI
        else:
            while j < n and cls[j] == C_OTHER:
                j += 1
            end = j - 1 if (j < n and cls[j] == C_LETTER) else j
            asc = 0
            for q in range(i, end):
                if u[q] < 0x80:
                    asc += 1
                else:
                    milli += SCRIPT_SYM_MILLI[script_of(u[q])]
            if asc:
                milli += PUNCT_RUN_MILLI + PUNCT_CHAR_MILLI * (asc - 1)
        i = j
    return max(1, (milli + 500) // 1000)


cpdef long long count_tokens(str text) except -1:
    cdef Py_ssize_t n = _load(text)
    return count_tokens_buf(_ubuf, _cbuf, n)


cpdef long long count_chat_tokens(roles, contents) except -1:
    cdef long long total = 3
    cdef Py_ssize_t m = len(roles)
    if len(contents) != m:
        raise ValueError("roles and contents differ in length")
    for i in range(m):
        total += 3 + count_tokens(roles[i]) + count_tokens(contents[i])
    return total
