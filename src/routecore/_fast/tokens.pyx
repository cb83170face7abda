# Token estimate: one walk over the pre-tokenizer's runs (see _pure.count_tokens,
# the readable twin; keep the two in step).
#
# The walkers read the str's own storage (1, 2 or 4 bytes per code point,
# PEP 393) through a fused pointer type, so there is no copy and the common
# 1-byte case compiles to table lookups only.

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
    int PyUnicode_READY(object o) except -1
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


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


cdef inline unsigned char _flags(Py_UCS4 c) noexcept nogil:
    cdef unsigned char f = 0
    if u_isalpha(c):
        f |= F_LETTER
    elif u_isnumeric(c):
        f |= F_NUMBER
    elif u_isspace(c):
        f |= F_SPACE
    if f & (F_LETTER | F_NUMBER) or c == 0x5F or u_isalnum(c):
        f |= F_WORD
    if u_isdigit(c):
        f |= F_DIGIT
    return f


# Class and flags of every Latin-1 code point (all of a 1-byte str).
cdef unsigned char _CLS256[256]
cdef unsigned char _FLAGS256[256]
for _i in range(256):
    _CLS256[_i] = _cls(<Py_UCS4>_i)
    _FLAGS256[_i] = _flags(<Py_UCS4>_i)


cdef inline unsigned char cls_at(Py_UCS4 c) noexcept nogil:
    return _CLS256[c] if c < 256 else _cls(c)


cdef inline long long _word_milli(Py_ssize_t length, long long acc, long long camel) noexcept nogil:
    cdef long long milli = WORD_BASE_MILLI + ACC_MILLI * acc + CAMEL_MILLI * camel
    cdef int q
    for q in range(N_KNEES):
        if length > WORD_KNEES[q]:
            milli += WORD_SLOPES_MILLI[q] * (length - WORD_KNEES[q])
    return milli


cdef long long count_tokens_kind(const ucs_t* u, Py_ssize_t n) noexcept nogil:
    """Token estimate over a str's storage; kj always holds the class of u[j]."""
    if n == 0:
        return 0
    cdef long long milli = 0, acc, camel
    # acc_bal: 1000 * non-ASCII Latin letters - ACCENTED_TEXT_PERMILLE * Latin
    # letters (>= 0 iff the text is accented, or has no Latin word);
    # lat_long: Latin word letters past ACCENTED_TEXT_KNEE.
    cdef long long acc_bal = 0, lat_long = 0
    cdef Py_ssize_t i = 0, j, last_nl, trail, q, end, asc
    cdef unsigned char k, kj = 0
    cdef Py_UCS4 cp, c
    cdef int s
    k = cls_at(u[0])
    while i < n:
        cp = u[i]
        j = i + 1
        if k == C_LETTER:
            s = script_of(cp)
            if s <= 1:
                acc = 1 if cp >= 0x80 else 0
                camel = 0
                while j < n:
                    c = u[j]
                    if c < 128:
                        kj = _CLS256[c]
                        if kj != C_LETTER:
                            break
                        if c <= 0x5A and u_islower(u[j - 1]):
                            camel += 1
                    else:
                        kj = cls_at(c)
                        if kj != C_LETTER or script_of(c) > 1:
                            break
                        acc += 1
                        if u_isupper(c) and u_islower(u[j - 1]):
                            camel += 1
                    j += 1
                acc_bal += 1000 * acc - ACCENTED_TEXT_PERMILLE * (j - i)
                if j - i > ACCENTED_TEXT_KNEE:
                    lat_long += j - i - ACCENTED_TEXT_KNEE
                milli += _word_milli(j - i, acc, camel)
            else:
                while j < n:
                    c = u[j]
                    kj = cls_at(c)
                    if kj != C_LETTER or script_of(c) != s:
                        break
                    j += 1
                milli += SCRIPT_RUN_MILLI[s] + SCRIPT_CHAR_MILLI[s] * (j - i)
        elif k == C_NUMBER:
            while j < n:
                kj = cls_at(u[j])
                if kj != C_NUMBER:
                    break
                j += 1
            milli += DIGIT_GROUP_MILLI * ((j - i + 2) // 3)
        elif k == C_SPACE or k == C_NEWLINE:
            last_nl = i if k == C_NEWLINE else -1
            while j < n:
                kj = cls_at(u[j])
                if kj == C_NEWLINE:
                    last_nl = j
                elif kj != C_SPACE:
                    break
                j += 1
            if last_nl >= 0:
                milli += NEWLINE_MILLI
                trail = j - last_nl - 1
            else:
                trail = j - i
            if trail > 0:
                if trail > 1 or not (j < n and kj != C_NUMBER):
                    milli += SPACE_MILLI
        else:
            asc = 0
            while j < n:
                kj = cls_at(u[j])
                if kj != C_OTHER:
                    break
                j += 1
            end = j - 1 if (j < n and kj == C_LETTER) else j
            for q in range(i, end):
                if u[q] < 0x80:
                    asc += 1
                else:
                    milli += SCRIPT_SYM_MILLI[script_of(u[q])]
            if asc:
                milli += PUNCT_RUN_MILLI + PUNCT_CHAR_MILLI * (asc - 1)
        i = j
        k = kj
    # Accented Latin text (French, German...): every word splits more.
    if acc_bal >= 0:
        milli += ACCENTED_TEXT_SLOPE_MILLI * lat_long
    return max(1, (milli + 500) // 1000)


cdef long long count_tokens_str(str text) except -1:
    PyUnicode_READY(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if kind == 1:
        return count_tokens_kind(<const uint8_t*>data, n)
    if kind == 2:
        return count_tokens_kind(<const uint16_t*>data, n)
    return count_tokens_kind(<const Py_UCS4*>data, n)


cpdef long long count_tokens(str text) except -1:
    return count_tokens_str(text)


cpdef long long count_chat_tokens(roles, contents) except -1:
    cdef long long total = 3
    cdef Py_ssize_t m = len(roles)
    if len(contents) != m:
        raise ValueError("roles and contents differ in length")
    for i in range(m):
        total += 3 + count_tokens_str(roles[i]) + count_tokens_str(contents[i])
    return total
