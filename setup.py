"""Build the one compiled extension, routecore._fast._core.

Set ROUTECORE_DEBUG_BUILD=1 for line tracing and an annotated HTML report.
All metadata lives in pyproject.toml.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ROUTECORE_DEBUG_BUILD") == "1"

macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
directives = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
if DEBUG:
    macros.append(("CYTHON_TRACE_NOGIL", "1"))
    directives.update({"linetrace": True, "boundscheck": True})

extensions = [
    Extension(
        "routecore._fast._core",
        ["src/routecore/_fast/_core.pyx"],
        include_dirs=[numpy.get_include(), "src/routecore/_fast"],
        define_macros=macros,
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG))
