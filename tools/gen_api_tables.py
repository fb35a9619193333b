"""Rewrite the option tables of docs/api.md from the option table
(pkg/http_async_client/_optable.py).  ``--check``: exit 1 when they are not
up to date (tests/test_optable.py runs the same comparison).

usage: python tools/gen_api_tables.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from http_async_client._optdocs import render_api

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def main(argv: list[str]) -> int:
    text = API.read_text(encoding="utf-8")
    new = render_api(text)
    if "--check" in argv:
        if new != text:
            print(f"{API} is not up to date: run python tools/gen_api_tables.py", file=sys.stderr)
            return 1
        return 0
    API.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
