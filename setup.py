"""Native accelerators, built when a C compiler is present.

Both are optional: without a compiler the install succeeds and the pure-Python paths run
(same results, slower). ``GOVHUB_NO_NATIVE=1`` skips them on purpose.
"""

import os

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11", "-Wall", "-Wno-unused-function"]

ext_modules = []
if not os.environ.get("GOVHUB_NO_NATIVE"):
    ext_modules = [
        Extension("hub.policy._splice", ["hub/policy/_splice.c"], extra_compile_args=FLAGS, optional=True),
        Extension("hub.router._batch", ["hub/router/_batch.c"], extra_compile_args=FLAGS, optional=True),
    ]

setup(ext_modules=ext_modules)
