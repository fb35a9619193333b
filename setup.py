"""setuptools entry point: only what pyproject.toml cannot say (cffi).

cffi builds ``_native`` against the stable ABI (``_native.abi3.so``, no
version-specific Python API), so a wheel is tagged ``cp310-abi3``: one wheel
for CPython 3.10 and every later version (tools/wheel.sh checks 3.10 and
3.13)."""

from setuptools import setup

setup(
    cffi_modules=["build_ffi.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
