# Declarations of the compiled core; bodies live in the included .pyx files.
include "tokens.pxd"
include "features.pxd"
include "knn.pxd"
include "phrases.pxd"
include "embed.pxd"
include "compress.pxd"
