"""Storage under concurrency: K writers do what a trial does against one study, and we count the errors.

    python bench/storage_concurrency.py                       # K = 2, 4, 8, 16; processes, then threads
    python bench/storage_concurrency.py -k 4 --seconds 3 --mode processes
    python bench/storage_concurrency.py --storage postgresql://gpupair:gpupair@127.0.0.1:55432/gpupair
    python bench/storage_concurrency.py --sqlite-timeout 0.5     # where "database is locked" comes from

Issue 15 item 6: several processes (``run --gpus``: one worker per GPU) or threads (one runner, K trials at
once) write one study on one host, and must never see "database is locked". Each writer loops, for
``--seconds``, over what ``FeasibilityStudy`` does per trial, through the same code paths:

* the stale-trial check before each trial (``optuna.storages.fail_stale_trials``, as ``recover_stale``);
* ``enqueue_trial`` with fixed parameters (the queue, or an extension step), then the WAITING trial is
  claimed with ``search/optuna_adapter.claim`` (heartbeat first, then RUNNING);
* a heartbeat every ``--heartbeat-s`` from a thread while the "pair runs" (``--trial-s``);
* 25 user attributes, two constraints (``set_constraint``) and the list form (a system attribute), ``tell``.

The storage is ``search/engine/storage.py``'s: ``default_storage_url`` of a fresh results directory (SQLite) opened
with ``open_storage``, unless ``--storage`` names another. Every exception is counted, "database is locked"
apart; the latency of each operation is kept (p50, p95, max). Writes storage_concurrency.json to $OUT or
results/bench and prints a markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from bench.benchlib import stamp, write_json
from gpupair_search.search.engine.storage import HEARTBEAT_S, default_storage_url, open_storage
from gpupair_search.search.record import optuna_adapter as adapter
from gpupair_search.search.record.trial_record import BATCH_DISTRIBUTION, BG_PARAM, FG_PARAM, PAIR_PARAM

STUDY = "storage-concurrency"
LOCKED = "database is locked"
N_USER_ATTRS = 25
PAIRS = tuple(f"g{g:02d}:bench/a+bench/b" for g in range(1, 13))  # the study's pair choices, fixed as a study's are


@dataclass
class WriterReport:
    """What one writer did and met."""

    trials: int = 0
    errors: Counter = field(default_factory=Counter)  # first line of each exception's message -> count
    latency_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def to_json(self) -> dict:
        return {"trials": self.trials, "errors": dict(self.errors), "latency_s": dict(self.latency_s)}

    @classmethod
    def from_json(cls, data: dict) -> WriterReport:
        return cls(data["trials"], Counter(data["errors"]), defaultdict(list, data["latency_s"]))

    def merge(self, other: WriterReport) -> None:
        self.trials += other.trials
        self.errors.update(other.errors)
        for op, values in other.latency_s.items():
            self.latency_s[op].extend(values)


def describe_failure(exc: BaseException) -> str:
    """The exception and its root cause: Optuna reports SQLite's "database is locked" as a StorageInternalError
    ("An exception is raised during the commit ...") whose cause is the OperationalError that says so."""
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
        if len(chain) > 10:
            break
    first_line = lambda e: (str(e).strip().splitlines() or [""])[0][:160]  # noqa: E731
    root = chain[-1]
    return f"{type(exc).__name__}" + (
        f" <- {type(root).__name__}: {first_line(root)}" if root is not exc else f": {first_line(exc)}"
    )


class _Writer:
    """One writer's loop; every storage call goes through :meth:`op`, which times it and counts its failure."""

    def __init__(self, study: optuna.Study, writer_id: int, heartbeat_s: float) -> None:
        self.study, self.writer_id, self.heartbeat_s = study, writer_id, heartbeat_s
        self.report = WriterReport()
        self.lock = threading.Lock()  # the heartbeat thread reports too

    def op(self, name: str, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - counting every failure is the point
            with self.lock:
                self.report.errors[f"{name}: {describe_failure(exc)}"] += 1
            raise
        finally:
            with self.lock:
                self.report.latency_s[name].append(time.perf_counter() - started)

    def run(self, seconds: float, trial_s: float) -> WriterReport:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                self.one_trial(n, trial_s)
            except Exception:  # noqa: BLE001 - counted in op(); the next trial goes on, as a worker's would
                pass
        return self.report

    def one_trial(self, n: int, trial_s: float) -> None:
        study = self.study
        self.op("fail_stale_trials", optuna.storages.fail_stale_trials, study)
        pair, tag = PAIRS[n % len(PAIRS)], f"w{self.writer_id}-t{n}"
        self.op(
            "enqueue_trial",
            study.enqueue_trial,
            {PAIR_PARAM: pair, FG_PARAM: 8 + n, BG_PARAM: 8},
            user_attrs={"bench_tag": tag, "phase": "initial"},
        )
        waiting = self.op("get_trials", study.get_trials, deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        mine = next((t for t in waiting if t.user_attrs.get("bench_tag") == tag), None)
        trial = self.op("claim", adapter.claim, study, mine) if mine is not None else None
        if trial is None:
            return
        stop = threading.Event()
        beats = threading.Thread(target=self._beat, args=(trial, stop), daemon=True)
        beats.start()
        try:
            self.op("system_attrs", adapter.system_attrs, study, trial)  # pair_for reads fixed_params
            self.op("suggest", trial.suggest_categorical, PAIR_PARAM, PAIRS)
            for name in (FG_PARAM, BG_PARAM):
                self.op("suggest", trial.suggest_int, name, BATCH_DISTRIBUTION.low, BATCH_DISTRIBUTION.high, log=True)
            self.op("set_user_attr", trial.set_user_attr, "gpupair:host", "bench")
            stop.wait(trial_s)  # the pair runs
            for i in range(N_USER_ATTRS):
                self.op("set_user_attr", trial.set_user_attr, f"attr_{i:02d}", {"value": i * 1.5, "note": "x" * 40})
            constraints = {"out_of_memory": 0.0, "over_safe_limit_mib": -10.0 - n}
            for key, value in constraints.items():
                self.op("set_constraint", trial.set_constraint, key, value)
            self.op("set_system_attr", adapter.set_system_attr, study, trial, "constraints", list(constraints.values()))
            self.op("tell", study.tell, trial, 100.0 + n)
            with self.lock:
                self.report.trials += 1
        finally:
            stop.set()
            beats.join(timeout=10)

    def _beat(self, trial: optuna.Trial, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            try:
                self.op("record_heartbeat", adapter.record_heartbeat, self.study, trial)
            except Exception:  # noqa: BLE001 - counted; a missed beat is retried at the next interval
                pass


def _writer_process(
    url: str, writer_id: int, seconds: float, trial_s: float, heartbeat_s: float, start_at: float, results
) -> None:
    _quiet()
    try:
        study = optuna.load_study(study_name=STUDY, storage=open_storage(url))
        time.sleep(max(0.0, start_at - time.time()))  # all writers start together
        report = _Writer(study, writer_id, heartbeat_s).run(seconds, trial_s)
    except Exception as exc:  # noqa: BLE001 - a writer that could not start is a counted error, not a hang
        report = WriterReport(errors=Counter({f"start: {type(exc).__name__}: {exc}"[:200]: 1}))
    results.put(report.to_json())


def _quiet() -> None:
    """Optuna's per-trial log lines and its "experimental" warnings would drown the table."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


def run_processes(url: str, k: int, seconds: float, trial_s: float, heartbeat_s: float) -> WriterReport:
    context = multiprocessing.get_context("spawn")  # each writer a fresh process with its own engine, as workers are
    queue = context.Queue()
    start_at = time.time() + 3.0 + 0.3 * k  # time for the spawned interpreters to import and open the storage
    procs = [
        context.Process(target=_writer_process, args=(url, i, seconds, trial_s, heartbeat_s, start_at, queue))
        for i in range(k)
    ]
    for p in procs:
        p.start()
    total = WriterReport()
    for _ in procs:
        total.merge(WriterReport.from_json(queue.get(timeout=seconds + 120)))
    for p in procs:
        p.join(timeout=30)
    return total


def run_threads(url: str, k: int, seconds: float, trial_s: float, heartbeat_s: float) -> WriterReport:
    study = optuna.load_study(study_name=STUDY, storage=open_storage(url))  # one storage, as one runner has
    writers = [_Writer(study, i, heartbeat_s) for i in range(k)]
    threads = [threading.Thread(target=w.run, args=(seconds, trial_s)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = WriterReport()
    for w in writers:
        total.merge(w.report)
    return total


def measure(url: str, k: int, mode: str, seconds: float, trial_s: float, heartbeat_s: float) -> dict:
    """One configuration on a fresh study: K writers for ``seconds``; the counts and latencies."""
    storage = open_storage(url)
    if STUDY in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=STUDY, storage=storage)
    optuna.create_study(storage=storage, study_name=STUDY, direction="maximize")
    run = run_processes if mode == "processes" else run_threads
    report = run(url, k, seconds, trial_s, heartbeat_s)
    ops = {
        op: {
            "n": len(v),
            "p50_ms": 1000 * statistics.median(v),
            "p95_ms": 1000 * _quantile(v, 0.95),
            "max_ms": 1000 * max(v),
        }
        for op, v in sorted(report.latency_s.items())
        if v
    }
    every = [x for v in report.latency_s.values() for x in v]
    return {
        "mode": mode,
        "k": k,
        "seconds": seconds,
        "trials": report.trials,
        "locked": sum(n for msg, n in report.errors.items() if LOCKED in msg),
        "errors": sum(report.errors.values()),
        "error_kinds": dict(report.errors.most_common(10)),
        "p50_ms": 1000 * statistics.median(every) if every else None,
        "p95_ms": 1000 * _quantile(every, 0.95) if every else None,
        "max_ms": 1000 * max(every) if every else None,
        "ops": ops,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, action="append", help="writers (repeatable; default 2, 4, 8, 16)")
    parser.add_argument("--mode", choices=("processes", "threads", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the writers write, per configuration")
    parser.add_argument("--trial-s", type=float, default=0.2, help="how long a trial's pair 'runs' between writes")
    parser.add_argument(
        "--heartbeat-s",
        type=float,
        default=min(1.0, HEARTBEAT_S),
        help="heartbeat interval (the product's default is GPUPAIR_HEARTBEAT_S, 10 s: 1 s writes more)",
    )
    parser.add_argument(
        "--storage", help="an Optuna storage URL (default: search/engine/storage.py's SQLite file in a temp dir)"
    )
    parser.add_argument(
        "--sqlite-timeout",
        type=float,
        help="SQLite's busy timeout in s instead of storage.py's SQLITE_BUSY_TIMEOUT_S (5: Python's default)",
    )
    args = parser.parse_args(argv)
    _quiet()
    modes = ("processes", "threads") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory(prefix="gpupair-storage-bench-") as tmp:
        url = args.storage or default_storage_url(Path(tmp) / "results")
        if args.sqlite_timeout is not None:
            url += f"?timeout={args.sqlite_timeout:g}"
        rows = [
            measure(url, k, mode, args.seconds, args.trial_s, args.heartbeat_s)
            for mode in modes
            for k in (args.k or [2, 4, 8, 16])
        ]
    name = "storage_concurrency" + (f"_timeout{args.sqlite_timeout:g}" if args.sqlite_timeout is not None else "")
    path = write_json(name + ".json", {**stamp(), "storage": url.split("://", 1)[0], "rows": rows})
    print("| writers | K | trials | 'database is locked' | other errors | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['k']} | {r['trials']} | {r['locked']} | {r['errors'] - r['locked']} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.0f} |"
        )
    for r in rows:
        for kind, n in r["error_kinds"].items():
            print(f"  {r['mode']} K={r['k']}: {n} x {kind}", file=sys.stderr)
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
