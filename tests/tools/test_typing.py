"""The package is typed: ``mypy --strict`` passes on it (and on the
examples, which use the public API as a user would), and ``py.typed``
ships with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import http_async_client
from support import ROOT


def _mypy(*targets: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if os.environ.get("CI") is None:
        pytest.importorskip("mypy", reason="mypy is in the [test] extra")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # no sanitizer runtime
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.10",
         "--cache-dir", str(tmp_path / "mypy-cache"), *targets],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )


def test_mypy_strict_package(tmp_path: Path) -> None:
    result = _mypy("pkg/http_async_client", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_mypy_strict_examples(tmp_path: Path) -> None:
    result = _mypy("examples", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_ships_with_the_package() -> None:
    pkg = Path(http_async_client.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_native.pyi").is_file()  # the compiled core's stub
