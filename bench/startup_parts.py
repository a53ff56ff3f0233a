#!/usr/bin/env python3
"""Where a GPU study's seconds before its first trial go, each part timed alone, in the order ``run`` does them:
the CLI's imports (a fresh interpreter), opening the GPU through NVML, opening it as an emulated 8 GiB card (the
memory holder), and the warm launcher from its start to its first forked job (import torch in the server).

    python3 bench/startup_parts.py [--device cuda:0] [-o out.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def seconds(step) -> float:
    started = time.perf_counter()
    step()
    return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()

    from gpupair_search.launcher.devices import DeviceRequest, open_device
    from gpupair_search.launcher.pair_runner import job_environment
    from gpupair_search.launcher.registry import Command
    from gpupair_search.launcher.warm_start import close_all, launch_warm

    parts = {
        "cli_imports_s": seconds(
            lambda: subprocess.run([sys.executable, "-c", "import gpupair_search.search.cli.app"], check=True)
        )
    }
    plain = None

    def open_plain() -> None:
        nonlocal plain
        plain = open_device(args.device, DeviceRequest())

    parts["nvml_open_s"] = seconds(open_plain)
    env = job_environment(plain)
    parts["emulated_8gib_open_s"] = seconds(lambda: open_device(args.device, DeviceRequest(card_mib=8192.0)).close())
    with tempfile.TemporaryDirectory() as tmp:
        command = Command((sys.executable, "-m", "json.tool", "--help"), Path(tmp), module="json.tool")
        parts["warm_launcher_first_job_s"] = seconds(
            lambda: launch_warm(command, Path(tmp) / "log", env, 5.0)[0].wait()
        )
        parts["warm_launcher_next_job_s"] = seconds(lambda: launch_warm(command, Path(tmp) / "log", env, 5.0)[0].wait())
    close_all()
    plain.close()
    benchlib.emit({"device": plain.name, **parts}, args.out)


if __name__ == "__main__":
    main()
