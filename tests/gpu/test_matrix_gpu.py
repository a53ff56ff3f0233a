"""The matrix study on a real GPU (``pytest -m gpu tests/gpu/test_matrix_gpu.py``): issue 15's "110-pair matrix:
at most 5 min wall on one H200, with a verdict for every pair". The wall time goes to $GPUPAIR_OUT/gpu_checks.json
when that variable is set, whatever the outcome.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import run_cli
from tests.gpu.test_gpu_launcher import _record

pytestmark = pytest.mark.gpu
TARGET_S = 300.0


def test_the_matrix_gets_a_verdict_for_every_pair_within_five_minutes(tmp_path):
    common = ["--study", "matrix", "--results", str(tmp_path / "results")]
    started = time.monotonic()
    done = run_cli("run", *common, "--gpu-memory", "8GiB", timeout=3600)
    wall = time.monotonic() - started
    status = run_cli("status", *common)
    rows = [line for line in status.stdout.splitlines() if re.match(r"\d+\s{2,}\S+/", line)]
    open_rows = [line for line in rows if re.search(r"\b(pending|searching)\b", line)]
    _record(
        "matrix_study",
        {
            "wall_s": round(wall, 1),
            "pairs": len(rows),
            "without_verdict": len(open_rows),
            "returncode": done.returncode,
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(rows) == 121 and not open_rows, open_rows
    assert wall <= TARGET_S, f"{wall:.0f} s for the matrix, target {TARGET_S:.0f} s"
