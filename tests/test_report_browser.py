"""The HTML report of a real (CPU fixture) study renders in a real browser with no network: every figure
draws, no JavaScript error is raised, and a screenshot shows a page."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from gpupair_search.launcher.measurement import EnergyStats
from tests.conftest import FIXTURES
from tests.conftest import run_cli as cli

STUDY_ARGS = [
    "--settings",
    str(FIXTURES / "study_settings.json"),
    "--models",
    str(FIXTURES / "models.json"),
    "--repos-root",
    str(FIXTURES),
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No network at all: any request for a remote resource fails, as on a GPU machine without internet.
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def report(tmp_path_factory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    done = cli(
        "run",
        *STUDY_ARGS,
        "--device",
        "cpu",
        "--gpu-memory",
        "400MiB",
        "--safe-limit",
        "250MiB",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    out = root / "report.html"
    made = cli("report", *STUDY_ARGS, "--results", str(results), "-o", str(out), timeout=120)
    assert made.returncode == 0, made.stderr
    figures = int(re.search(r"(\d+) figures", made.stdout).group(1))
    return out, figures


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *OFFLINE, f"--user-data-dir={cwd / 'chromium-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_report_is_self_contained(report):
    out, figures = report
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline, nothing fetched
    assert page.count("window.PlotlyConfig") == 1  # ... and only once
    assert f'<meta name="gpupair-figures" content="{figures}">' in page
    assert figures >= 1 + 1 + 1 + 1 + 2 * 3  # table, matrix, expected, one frontier, timeline+power per pair
    assert "SIMULATED" not in page  # a measured study


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install -y chromium); CI installs it")
def test_report_renders_in_headless_chromium(report, tmp_path):
    out, figures = report
    dom = _chromium("--dump-dom", out.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    plots = re.findall(r'class="[^"]*\bjs-plotly-plot\b[^"]*"', dom.stdout)
    assert len(plots) == figures, f"{len(plots)} plots rendered, {figures} in the report"
    assert dom.stdout.count('class="main-svg"') >= figures
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', dom.stdout, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else dom.stdout[:500]

    shot = tmp_path / "report.png"
    taken = _chromium(f"--screenshot={shot}", "--window-size=1400,3000", out.as_uri(), cwd=tmp_path)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 3000)
    assert len(data) > 50_000  # a page of charts, not a blank one


def test_simulated_figures_say_so():
    from gpupair_search.search.views import plots

    rows = [
        {
            "t_s": t / 10,
            "foreground_mib": 100.0 * t if t < 8 else 0.0,
            "background_mib": 50.0,
            "total_mib": (100.0 * t if t < 8 else 0.0) + 50.0,
            "power_w": "",
        }
        for t in range(12)
    ]
    fig = plots.memory_timeline(rows, safe_limit_mib=500, card_mib=800, outcome="oom_foreground", simulated=True)
    assert fig.layout.title.text.startswith("SIMULATED")
    oom = [trace for trace in fig.data if trace.name and trace.name.startswith("out of memory")]
    assert oom and oom[0].x[0] == pytest.approx(0.7)  # the last sample before the foreground's memory fell
    assert plots.energy_power(rows, EnergyStats(window_s=0.8), simulated=True).layout.title.text.startswith("SIMULATED")
