"""Native accelerators, built when a C compiler is present.

All are optional: without a compiler the install succeeds and the pure-Python paths run
(same results, slower). ``GOVHUB_NO_NATIVE=1`` skips them on purpose.
"""

import os

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11", "-Wall", "-Wno-unused-function"]
NATIVE = {
    "hub.policy._splice": "hub/policy/_splice.c",
    "hub.router._batch": "hub/router/_batch.c",
    "hub.catalogue._fastrecord": "hub/catalogue/_fastrecord.c",
}

ext_modules = []
if not os.environ.get("GOVHUB_NO_NATIVE"):
    ext_modules = [
        Extension(name, [source], extra_compile_args=FLAGS, optional=True)
        for name, source in NATIVE.items()
    ]

setup(ext_modules=ext_modules)
