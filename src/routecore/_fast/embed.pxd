cdef enum:
    # Longest word WordPiece splits (BERT's max_input_chars_per_word).
    WORDPIECE_MAX_CHARS = 100

# A WordPiece vocabulary as an open-addressing table of 64-bit FNV-1a hashes
# of the token strings ("##piece" for continuations), and its vectors.
cdef class EmbedTable:
    cdef readonly Py_ssize_t n_tokens
    cdef readonly Py_ssize_t dim
    cdef readonly int max_piece       # longest piece in code points, "##" not counted
    cdef uint64_t* keys               # hash per slot (0: empty)
    cdef int32_t* vals                # token id per slot
    cdef uint64_t mask                # slots - 1 (a power of two minus one)
    cdef readonly object vectors      # float32[n_tokens, dim], C-contiguous, kept alive
    cdef const float* vecs
