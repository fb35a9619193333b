"""setuptools entry point: only what pyproject.toml cannot say (cffi)."""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
