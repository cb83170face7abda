# cython: language_level=3
"""routecore's compiled core: token estimate, features, brute-force kNN, phrases,
the policy kernel, the classifier's combination step, the static sentence
embedding and extractive prompt compression.

One extension module: this file includes its parts so they call each other
as plain C. Application code goes through routecore.tokens / features /
catalog, never through this module.
"""

from libc.stdint cimport int8_t, uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from libc.math cimport log, log1p, sqrt, INFINITY

import numpy as np

include "constants.pxi"
include "tokens.pyx"
include "features.pyx"
include "knn.pyx"
include "phrases.pyx"
include "policy.pyx"
include "classify.pyx"
include "embed.pyx"
include "compress.pyx"

assert len(SCALAR_NAMES) == N_SCALARS, "constants and features.pxd disagree"
