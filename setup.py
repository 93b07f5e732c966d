"""Build the optional C speed-up; everything else is in pyproject.toml.

``optional=True``: without a C compiler or Python's headers the build is
skipped with a warning and scalems_store uses its pure-Python code instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "scalems_store._speedups",
            sources=["scalems_store/_speedups.c"],
            extra_compile_args=["-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
