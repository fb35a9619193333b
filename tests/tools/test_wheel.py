"""What the one-wheel-for-3.10+ claim rests on (docs/wheel.md): the core is
built against the stable ABI and the wheel is tagged for it; the wheel's
smoke script (tools/wheel_smoke.py) is typed like the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import ROOT

from http_async_client import _native


def test_the_core_is_a_stable_abi_module() -> None:
    # cffi's py_limited_api: _native.abi3.so, loadable by any CPython >= 3.2,
    # so a cp310-abi3 wheel is honest
    assert Path(_native.__file__).name == "_native.abi3.so"


def test_setup_tags_wheels_cp310_abi3() -> None:
    text = (ROOT / "setup.py").read_text()
    assert '"py_limited_api": "cp310"' in text


def test_mypy_strict_wheel_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # no sanitizer runtime
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.10",
         "--cache-dir", str(tmp_path / "mypy-cache"), "tools/wheel_smoke.py"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
