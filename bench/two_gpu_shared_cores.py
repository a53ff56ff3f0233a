"""`run --gpus` with the per-worker core split switched off: the A/B partner of `run --gpus` itself.

The 2026-11-27c runs (bench/history/) credited the split (``launcher/cpu_share.py``) with taking the two-GPU probe study from 0.642x to
0.55x of the one-GPU wall time, but the 0.642x call ran on another machine. This runs the same command on
the same machine with one thing changed: every worker gets no ``--cpus`` (the code before the split), so
both variants can be timed in one device call (`bash bench/gpu_remaining.sh two-gpu two,shared`).

    python3 bench/two_gpu_shared_cores.py run --study feasibility --no-extend --results /tmp/p --gpus 0,1
"""

from __future__ import annotations

import sys

from gpupair_search.search.cli import run_study
from gpupair_search.search.cli.app import main

if __name__ == "__main__":
    run_study.worker_shares = lambda n: [None] * n  # the only change: no worker is given its cores
    sys.argv[0] = "gpupair-search"
    main()
