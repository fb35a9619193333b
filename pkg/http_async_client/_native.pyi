# The cffi-generated extension (build_ffi.py).  Its ``lib`` exposes the C
# functions and constants of csrc/hac.h; cffi gives them no static types.
from typing import Any

ffi: Any
lib: Any
