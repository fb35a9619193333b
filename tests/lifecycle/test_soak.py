"""CI's soak: 100,000 mixed requests, RSS flat (bench/soak.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

SOAK = ROOT / "bench" / "soak.py"


def test_soak_100k_rss_flat() -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "100000", "--max-seconds", "300"],
        capture_output=True, text=True, timeout=400,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, (report, result.stderr[-2000:])
    assert report["requests"] == 100000
    assert report["growth_percent"] < 5.0
    stats = report["stats"]
    # every kind of outcome happened, and each is counted once
    assert stats["replies"] > 0 and stats["errors"] > 0 and stats["timeouts"] > 0
    assert stats["replies"] + stats["errors"] + stats["timeouts"] == 100000
