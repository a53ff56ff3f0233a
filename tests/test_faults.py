"""Faults, each injected for real (CPU device, real processes): the study survives them, loses no trial,
runs none twice, and leaves no process behind.

SIGKILL of the runner mid-trial is ``test_sigkill_mid_study_then_the_same_command_loses_and_duplicates_nothing``
in tests/test_study_cpu.py (not repeated here); :func:`sigkill_runner` below is the same injection for
bench/reliability.py, which repeats every scenario of this file (``SCENARIOS``) and counts processes left
behind and trials lost.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import psutil
from optuna.trial import TrialState

from tests.conftest import FIXTURES, cli_env, default_sigint, read_pids, wait_until

CARD = ["--gpu-memory", "400MiB", "--safe-limit", "250MiB"]
INPUTS = ["--models", str(FIXTURES / "models.json"), "--repos-root", str(FIXTURES)]
STUDY = "fault_study"
GPU_CARD = ["--gpu-memory", "8GiB", "--safe-limit", "7500MiB"]  # a GPU's CUDA context alone is over 400 MiB


# -- helpers shared with bench/reliability.py ------------------------------------------------------
def job(model: str, pids: Path, **hyperparameters) -> dict:
    """A fake-training job that appends its PID to ``pids`` (so a test can check it is gone)."""
    return {"repo": "fixture", "model": model, "hyperparameters": {**hyperparameters, "pidfile": str(pids)}}


def write_settings(path: Path, experiments: list[tuple[dict, dict | None, str]], name: str = STUDY) -> Path:
    body = {
        "experiment_name": name,
        "mode": "parallel",
        "experiments": [
            {
                "mode": "parallel",
                "foreground": {"mode": "default", **fg},
                **({"background": bg} if bg else {}),
                "note": note,
            }
            for fg, bg, note in experiments
        ],
    }
    path.write_text(json.dumps(body, indent=1))
    return path


def four_pairs(work: Path, long_s: float = 8.0) -> Path:
    """A fitting pair, a crashing one (a measured FAIL), a long one (the fault lands in it), a fitting one."""
    pids = work / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    small = {"batch_size": 8, "mib_per_sample": 2}
    return write_settings(
        work / "four_pairs.json",
        [
            (job("ok", pids / "g1", seconds=0.5, **small), job("ok", pids / "g1", seconds=120, **small), "fits"),
            (job("crash", pids / "g2", seconds=0.2), job("ok", pids / "g2", seconds=120), "crashes"),
            (job("ok", pids / "g3", seconds=long_s, **small), job("ok", pids / "g3", seconds=120, **small), "long"),
            (job("ok", pids / "g4", seconds=0.5, **small), job("ok", pids / "g4", seconds=120, batch_size=4), "fits"),
        ],
    )


def fault_device() -> str:
    """bench/reliability.py --device: the same faults on a real GPU (GPUPAIR_FAULT_DEVICE); tests, CI: the CPU."""
    return os.environ.get("GPUPAIR_FAULT_DEVICE", "cpu")


def study_cli(command: str, settings: Path, results: Path, *extra: str, storage: str | None = None) -> list[str]:
    device = fault_device()
    runner_args = shlex.split(os.environ.get("GPUPAIR_FAULT_RUNNER_ARGS", ""))  # e.g. --parallel 3: packing on
    argv = [
        sys.executable,
        "-m",
        "gpupair_search.search.cli.app",
        command,
        "--settings",
        str(settings),
        *INPUTS,
        "--device",
        device,
        *(CARD if device == "cpu" else GPU_CARD),
        "--results",
        str(results),
        *runner_args,
        *extra,
    ]
    return argv + (["--storage", storage] if storage else [])


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def trials_of(storage: str, name: str = STUDY) -> list[optuna.trial.FrozenTrial]:
    try:
        suffix = "-cpu" if fault_device() == "cpu" else ""  # CPU studies have a name of their own
        return optuna.load_study(study_name=name + suffix, storage=storage).get_trials()
    except Exception:  # noqa: BLE001 - not created yet, or the file is being written
        return []


def config(t) -> tuple:
    params = t.params or t.system_attrs.get("fixed_params", {})
    return params.get("pair"), params.get("fg_batch_size"), params.get("bg_batch_size")


def measured(trials) -> collections.Counter:
    """How often each configuration was measured, per way of measuring it (a trial closed unrun as a duplicate is
    not a run). Packed (``--parallel K``), a configuration may be measured twice: packed, then confirmed alone."""
    from gpupair_search.search.record.trial_record import measurement_mode

    return collections.Counter(
        (*config(t), measurement_mode(t.state, t.user_attrs)) for t in trials if measurement_mode(t.state, t.user_attrs)
    )


def lost(trials) -> set:
    """Queued configurations that never got a measured COMPLETE/FAIL trial."""
    return {config(t) for t in trials} - {key[:-1] for key in measured(trials)}


class ProcessWatch:
    """Records every process below ``roots`` (runners, workers) and in the pidfiles under ``pid_dir`` while a
    scenario runs; :meth:`left` says which of them are still alive afterwards (same PID and start time)."""

    def __init__(self, pid_dir: Path | None = None) -> None:
        self.pid_dir, self.roots = pid_dir, []
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def add_root(self, popen: subprocess.Popen) -> subprocess.Popen:
        self.roots.append(popen.pid)
        self._record(popen.pid)
        return popen

    def _record(self, pid: int) -> None:
        if pid not in self.seen:
            try:
                self.seen[pid] = psutil.Process(pid).create_time()
            except psutil.Error:
                pass

    def _scan(self) -> None:
        for root in list(self.roots):
            try:
                for child in psutil.Process(root).children(recursive=True):
                    self._record(child.pid)
            except psutil.Error:
                pass
        if self.pid_dir is not None and self.pid_dir.exists():
            for pidfile in self.pid_dir.iterdir():
                for pid in read_pids(pidfile):
                    self._record(pid)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(0.05)

    def left(self, timeout: float = 15.0) -> list[int]:
        """Processes still alive, after giving them ``timeout`` seconds to end."""
        self._stop.set()
        self._thread.join()
        self._scan()

        def alive() -> list[int]:
            out = []
            for pid, started in self.seen.items():
                try:
                    proc = psutil.Process(pid)
                    if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                        out.append(pid)
                except psutil.Error:
                    pass
            return out

        wait_until(lambda: not alive(), timeout=timeout, step=0.2)
        return alive()


@dataclass
class FaultReport:
    """One injection: what the bench tabulates, and what the test asserts on."""

    fault: str
    trials_run: int = 0
    processes_left: list[int] = field(default_factory=list)
    trials_lost: int = 0
    problems: list[str] = field(default_factory=list)  # broken expectations; empty: the injection passed
    data: dict = field(default_factory=dict)

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            self.problems.append(what)


def _finish(report: FaultReport, trials, watch: ProcessWatch) -> FaultReport:
    report.trials_run = sum(measured(trials).values())
    report.trials_lost = len(lost(trials))
    report.processes_left = watch.left()
    report.expect(not report.processes_left, f"processes left behind: {report.processes_left}")
    report.expect(max(measured(trials).values(), default=0) <= 1, f"a configuration ran twice: {measured(trials)}")
    report.expect(not [t for t in trials if t.state is TrialState.RUNNING], "a trial was left RUNNING")
    report.data["trials"] = trials
    return report


def _rerun_completes(report: FaultReport, argv: list[str], watch: ProcessWatch, storage: str) -> list:
    again = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=300)
    report.data["rerun"] = again
    report.expect(again.returncode == 0, f"the resumed run exited {again.returncode}: {again.stderr[-2000:]}")
    trials = trials_of(storage)
    report.expect(
        not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)],
        "the resumed study left trials WAITING/RUNNING",
    )
    report.expect(not lost(trials), f"configurations never measured: {lost(trials)}")
    return trials


def _interrupt_long_trial(work: Path, sig: int, fault: str) -> FaultReport:
    report = FaultReport(fault)
    settings, results = four_pairs(work), work / "results"
    storage = sqlite_url(results / "gpupair.db")
    argv = study_cli("run", settings, results, "--full-epoch")
    watch = ProcessWatch(work / "pids")
    runner = watch.add_root(
        subprocess.Popen(
            argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
        )
    )
    started = wait_until(lambda: len(read_pids(work / "pids" / "g3")) >= 2, timeout=120)
    report.expect(bool(started), "the long pair never started")
    pair_pids = read_pids(work / "pids" / "g3")
    guards = [p for p in (_parent(pid) for pid in pair_pids) if p]
    running = [t for t in trials_of(storage) if t.state is TrialState.RUNNING]
    runner.send_signal(sig)
    stderr = runner.communicate(timeout=60)[1]
    report.data.update(code=runner.returncode, stderr=stderr, pair_pids=pair_pids, guards=guards)
    report.expect(runner.returncode != 0, f"the runner exited 0 after {fault}")
    long_ones = [t for t in running if config(t)[0].startswith("g03")]
    report.expect(len(long_ones) == 1 and (len(running) == 1 or _packed(argv)), "the long pair was not the one running")
    report.expect(
        wait_until(lambda: not _alive(pair_pids + guards), timeout=15),
        f"processes of the interrupted pair left: {_alive(pair_pids + guards)}",
    )
    numbers = {t.number for t in running}
    # Packed, a short pair RUNNING when the signal was sent may have ended on its own before it landed: only a trial
    # that recorded no outcome was interrupted (with --parallel 3 a short crash pair can end first).
    interrupted = sorted(
        (t for t in trials_of(storage) if t.number in numbers and "outcome" not in t.user_attrs),
        key=lambda t: not config(t)[0].startswith("g03"),
    )
    report.expect(any(config(t)[0].startswith("g03") for t in interrupted), "the long pair was not interrupted")
    report.data["interrupted"] = interrupted[0] if interrupted else None
    trials = _rerun_completes(report, argv, watch, storage)
    for stopped in interrupted:  # run again, once, by a later trial (its retry, or the initial one queued on resume)
        again = [
            t
            for t in trials
            if config(t) == config(stopped)
            and t.number > stopped.number
            and "outcome" in t.user_attrs
            and t.user_attrs.get("phase") == stopped.user_attrs.get("phase")
        ]
        report.expect(
            len(again) == 1,
            f"the interrupted configuration {config(stopped)} was not run again exactly "
            f"once: {len(again)} times (trial {stopped.number} ended {stopped.state.name}, "
            f"{stopped.user_attrs.get('outcome') or stopped.user_attrs.get('fail_reason')})",
        )
    return _finish(report, trials, watch)


def _packed(argv: list[str]) -> bool:
    """Whether the runner packs trials (--parallel K, K > 1): several trials are then RUNNING at once. The
    scenarios must know, so they take an explicit K; ``auto`` (K decided by the device) is refused."""
    if "--parallel" not in argv:
        return False
    value = argv[argv.index("--parallel") + 1]
    if not value.isdigit():
        raise ValueError(f"the fault scenarios need --parallel K with an explicit K, not {value!r}")
    return int(value) > 1


def _parent(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def _alive(pids: list[int]) -> list[int]:
    from tests.conftest import pids_alive

    return pids_alive(pids)


# -- scenarios -------------------------------------------------------------------------------------
def sigkill_runner(work: Path) -> FaultReport:
    """SIGKILL of ``run`` while a pair runs, then the same command: covered as a test in test_study_cpu.py."""
    return _interrupt_long_trial(work, signal.SIGKILL, "SIGKILL of the runner mid-trial")


def sigint_runner(work: Path) -> FaultReport:
    report = _interrupt_long_trial(work, signal.SIGINT, "SIGINT (Ctrl-C) of the runner mid-trial")
    t = report.data.get("interrupted")
    report.expect(report.data.get("code") == 130, f"exit code {report.data.get('code')}, expected 130")
    report.expect(
        "interrupted" in report.data.get("stderr", "") and "Traceback" not in report.data.get("stderr", ""),
        "no clear message on Ctrl-C: " + report.data.get("stderr", "")[-1000:],
    )
    report.expect(
        t is not None and t.state is TrialState.FAIL and "interrupted" in t.user_attrs.get("fail_reason", ""),
        f"the interrupted trial is not FAIL with a reason: {t and (t.state, t.user_attrs.get('fail_reason'))}",
    )
    return report


def _one_pair(work: Path, fault: str, fg: dict, bg: dict | None, *extra: str) -> FaultReport:
    report = FaultReport(fault)
    pids = work / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    settings = write_settings(work / "one_pair.json", [(fg, bg, fault)])
    results = work / "results"
    watch = ProcessWatch(pids)
    argv = study_cli("run", settings, results, "--full-epoch", *extra)
    runner = watch.add_root(
        subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    out, err = runner.communicate(timeout=120)
    report.data.update(code=runner.returncode, stdout=out, stderr=err, runs=2 if _packed(argv) else 1)
    report.expect(runner.returncode == 0, f"run exited {runner.returncode}: {err[-2000:]}")
    trials = trials_of(sqlite_url(results / "gpupair.db"))
    expected = report.data["runs"]  # packed, a failure is measured again alone on the card (confirmation.py)
    report.expect(
        len(trials) == expected and all(t.state is TrialState.FAIL for t in trials),
        f"expected {expected} FAIL trial(s), got {[(t.number, t.state.name) for t in trials]}",
    )
    return _finish(report, trials, watch)


def hanging_workload(work: Path) -> FaultReport:
    pids = work / "pids"
    report = _one_pair(
        work,
        "workload hangs (--timeout 2)",
        job("ok", pids / "fg", seconds=600),
        job("ok", pids / "bg", seconds=600),
        "--timeout",
        "2",
    )
    reason = report.data["trials"][0].user_attrs.get("fail_reason", "") if report.data["trials"] else ""
    report.expect(reason.startswith("timeout:"), f"fail_reason {reason!r}, expected timeout")
    report.expect(len(read_pids(pids / "fg")) == report.data["runs"], "the hanging foreground did not start")
    return report


def background_dies(work: Path) -> FaultReport:
    pids = work / "pids"
    # The background dies 3 s after the foreground of its run started, however long the runner waited for the
    # background to get ready: on a GPU a background that never uses the device is waited for 15 s.
    report = _one_pair(
        work,
        "background dies mid-run",
        job("ok", pids / "fg", seconds=60),
        job("crash", pids / "bg", seconds=3, after_pidfile=str(pids / "fg")),
    )
    trial = report.data["trials"][0] if report.data["trials"] else None
    reason = trial.user_attrs.get("fail_reason", "") if trial else ""
    report.expect(reason.startswith("crash_background:"), f"fail_reason {reason!r}, expected crash_background")
    # mid-run: the foreground was running when the background died (it did not end by itself)
    report.expect(
        trial is not None and trial.user_attrs.get("foreground_duration_s", 0) >= 1.0,
        "the background died before the foreground ran",
    )
    return report


class FailingNvml:
    """Tests-only fault injector: wraps a Device. Once every job in ``armed_by`` (a callable giving each job's
    pids) has pids and all of them have had a reading, and ``after`` calls later, ``reading()`` and
    ``memory_by_pid()`` raise as NVML does when the GPU falls off the bus (NVML_ERROR_GPU_IS_LOST). Arming on
    readings, not on a call count from the start, puts the failure after both jobs were measured however
    slowly a loaded machine starts them."""

    def __init__(self, inner, armed_by, after: int) -> None:
        self.inner, self.armed_by, self.after = inner, armed_by, after
        self.seen: set[int] = set()
        self.armed, self.calls_since_armed, self.failures = False, 0, 0
        self.kind, self.name = inner.kind, f"{inner.name} (NVML fails {after} calls after both jobs were read)"
        self.capacity_mib, self.enforces_capacity = inner.capacity_mib, inner.enforces_capacity

    def _call(self, method: str, *args):
        if not self.armed:  # once armed, stays armed: the pidfiles are not read again
            jobs = self.armed_by()
            self.armed = all(jobs) and set().union(*jobs) <= self.seen
        if self.armed:
            self.calls_since_armed += 1
            if self.calls_since_armed > self.after:
                self.failures += 1
                import pynvml

                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return getattr(self.inner, method)(*args)

    def memory_by_pid(self, pids):
        out = self._call("memory_by_pid", pids)
        self.seen.update(pid for pid, mib in out.items() if mib > 0)
        return out

    def reading(self):
        return self._call("reading")

    def __getattr__(self, name):  # job_env, foreign_processes, describe, close
        return getattr(self.inner, name)


def nvml_fails(work: Path) -> FaultReport:
    from gpupair_search.launcher.devices.cpu import CpuDevice
    from gpupair_search.launcher.pair_runner import RunOptions, run_pair
    from gpupair_search.launcher.registry import Registry
    from gpupair_search.launcher.spec import JobConfig, PairSpec

    report = FaultReport("NVML fails mid-run")
    pids = work / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    registry = Registry.load(FIXTURES / "models.json", base_dir=FIXTURES)
    pair = PairSpec(
        1,
        JobConfig("fixture", "ok", {"seconds": 3.0, "pidfile": str(pids / "fg")}),
        JobConfig("fixture", "ok", {"seconds": 120.0, "pidfile": str(pids / "bg")}),
    )
    # two calls per sample at 20 Hz: fails ~0.5 s after both jobs were read, while the 3 s foreground runs
    device = FailingNvml(CpuDevice(400.0), armed_by=lambda: [read_pids(pids / "fg"), read_pids(pids / "bg")], after=20)
    watch = ProcessWatch(pids)
    started = time.monotonic()
    try:
        result = run_pair(pair, registry, device, RunOptions(monitor_hz=20.0, timeout_s=60.0), work / "pair")
    except Exception as exc:  # noqa: BLE001 - the fault must not end the pair
        report.expect(False, f"run_pair raised {type(exc).__name__}: {exc}")
        report.processes_left = watch.left()
        return report
    report.data.update(result=result, device=device, seconds=time.monotonic() - started)
    report.trials_run = 1
    report.processes_left = watch.left()
    report.expect(not report.processes_left, f"processes left behind: {report.processes_left}")
    report.expect(device.failures > 0, "the injected failure never happened")
    report.expect(result.outcome.value == "ok", f"outcome {result.outcome.value}: {result.error_message}")
    report.expect(any("GPU is lost" in w for w in result.warnings), f"no warning recorded: {result.warnings}")
    report.expect(
        result.memory.foreground_peak_mib > 0 and result.memory.background_peak_mib > 0,
        "the readings before the failure were not kept",
    )
    return report


def storage_unreachable(work: Path) -> FaultReport:
    report = FaultReport("storage unreachable at start")
    pids = work / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    settings = write_settings(
        work / "one_pair.json", [(job("ok", pids / "fg", seconds=1), job("ok", pids / "bg", seconds=60), "never runs")]
    )
    watch = ProcessWatch(pids)
    cases = [
        ("run", "postgresql://someone:secret@127.0.0.1:1/nothing"),
        ("run", sqlite_url(work / "no" / "such" / "dir" / "study.db")),
        ("worker", "postgresql://someone:secret@127.0.0.1:1/nothing"),
    ]
    runs = []
    for command, url in cases:
        results = work / f"results_{len(runs)}"
        proc = watch.add_root(
            subprocess.Popen(
                study_cli(command, settings, results, storage=url),
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        out, err = proc.communicate(timeout=60)
        runs.append((command, url, proc.returncode, err))
        report.expect(proc.returncode not in (0, None), f"{command} {url}: exit code {proc.returncode}")
        report.expect(
            err.startswith("error: cannot open storage") and "Traceback" not in err,
            f"{command} {url}: not a clear error: {err[-2000:]}",
        )
        report.expect(len(err.strip().splitlines()) <= 3, f"{command} {url}: not one paragraph: {err}")
        report.expect("secret" not in err, f"{command} {url}: the password was printed")
        report.expect(not list(results.glob("run_*")), f"{command} {url}: a results run directory was created")
    report.expect(not list(pids.iterdir()), "a job was started")
    report.data["runs"] = runs
    report.processes_left = watch.left()
    report.expect(not report.processes_left, f"processes left behind: {report.processes_left}")
    return report


def results_unwritable(work: Path) -> FaultReport:
    """After the first trial, while the second pair starts, the run's results directory is replaced by a regular
    file (as root, chmod would not stop the writes): the runner must stop the pair with a clear error, the storage
    stay consistent, and a run with a writable --results complete the study."""
    report = FaultReport("results directory becomes unwritable mid-study")
    settings, results = four_pairs(work, long_s=2.0), work / "results"
    storage = sqlite_url(work / "study.db")  # outside --results, so the study outlives the results directory
    watch = ProcessWatch(work / "pids")
    argv = study_cli("run", settings, results, "--full-epoch", storage=storage)
    runner = watch.add_root(
        subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )

    # after the first trial, while the second pair's background settles: its foreground's log cannot be opened.
    # Packed, the second pair started with the first: then once a trial finished and another is still queued.
    def due() -> bool:
        trials = trials_of(storage)
        if not any(t.state.is_finished() for t in trials):
            return False
        if _packed(argv):
            return any(t.state is TrialState.WAITING for t in trials)
        return len(read_pids(work / "pids" / "g2")) == 1

    first_done = wait_until(due, timeout=120)
    report.expect(bool(first_done), "the first trial never finished")
    run_dirs = list(results.glob("run_*"))
    report.expect(len(run_dirs) == 1, f"expected one run directory, found {run_dirs}")
    if run_dirs:
        _replace_by_file(run_dirs[0])
    out, err = runner.communicate(timeout=120)
    report.data.update(code=runner.returncode, stderr=err)
    report.expect(
        runner.returncode not in (0, None), f"the runner exited {runner.returncode} with an unwritable results dir"
    )
    report.expect(
        "error:" in err and "Traceback" not in err and "results" in err.split("error:")[-1],
        f"not a clear error: {err[-2000:]}",
    )
    after_fault = trials_of(storage)
    report.data["after_fault"] = after_fault
    report.expect(not [t for t in after_fault if t.state is TrialState.RUNNING], "a trial was left RUNNING")
    report.expect(
        any(t.state is TrialState.FAIL and "outcome" not in t.user_attrs for t in after_fault),
        "the trial that could not be written was not marked",
    )
    argv = study_cli("run", settings, work / "results_writable", "--full-epoch", storage=storage)
    trials = _rerun_completes(report, argv, watch, storage)
    return _finish(report, trials, watch)


def _replace_by_file(directory: Path) -> None:
    moved = directory.with_name(directory.name + ".moved")
    blocker = directory.with_name(directory.name + ".file")
    blocker.write_text("this was the run directory; it is a file now\n")
    directory.rename(moved)
    for _ in range(50):  # the runner may re-create the directory in between: take it away again
        try:
            blocker.rename(directory)
            return
        except IsADirectoryError:
            directory.rmdir()
        except OSError:
            time.sleep(0.01)


SCENARIOS = {
    "sigkill": sigkill_runner,
    "sigint": sigint_runner,
    "hang": hanging_workload,
    "background_dies": background_dies,
    "nvml": nvml_fails,
    "storage_unreachable": storage_unreachable,
    "results_unwritable": results_unwritable,
}


def _passed(report: FaultReport) -> None:
    assert not report.problems, "\n".join(report.problems)
    assert report.processes_left == [] and report.trials_lost == 0


# -- tests -----------------------------------------------------------------------------------------
def test_sigint_mid_trial_stops_the_pair_marks_the_trial_and_the_study_resumes(tmp_path):
    report = sigint_runner(tmp_path)
    _passed(report)
    assert report.data["pair_pids"] and report.data["guards"]  # we did watch the pair's processes die
    counts = measured(report.data["trials"])
    assert set(counts.values()) == {1} and len(counts) == 4
    crash = [t for t in report.data["trials"] if config(t)[0].startswith("g02")]
    assert len(crash) == 1  # the crash measured before Ctrl-C is a result: not queued again on resume


def test_a_hanging_workload_times_out_and_leaves_no_process(tmp_path):
    report = hanging_workload(tmp_path)
    _passed(report)
    assert report.data["trials"][0].user_attrs["outcome"] == "timeout"


def test_a_background_dying_mid_run_is_crash_background(tmp_path):
    report = background_dies(tmp_path)
    _passed(report)
    assert report.data["trials"][0].user_attrs["outcome"] == "crash_background"


def test_nvml_failing_mid_run_is_a_recorded_warning_not_a_crash(tmp_path):
    report = nvml_fails(tmp_path)
    _passed(report)
    result = report.data["result"]
    assert result.samples and report.data["seconds"] < 30


def test_storage_unreachable_at_start_is_one_clear_error_and_starts_nothing(tmp_path):
    _passed(storage_unreachable(tmp_path))


def test_results_dir_becoming_unwritable_mid_study_is_a_clear_error_and_storage_stays_consistent(tmp_path):
    report = results_unwritable(tmp_path)
    _passed(report)
    assert report.data["code"] == 1  # a user error (ResultsDirError), not a crash


def test_results_under_a_file_is_a_clear_error_before_anything_starts(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    settings = four_pairs(tmp_path)
    for storage in (None, sqlite_url(tmp_path / "study.db")):
        done = subprocess.run(
            study_cli("run", settings, blocker / "results", storage=storage),
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        # refused by the output-path guard as the flag is parsed: a usage error naming the file in the way
        assert done.returncode == 2, done.stderr
        assert "Invalid value for '--results'" in done.stderr and "a_file is a file" in done.stderr
        assert "Traceback" not in done.stderr
    assert not list((tmp_path / "pids").iterdir())
    assert not [
        t
        for t in trials_of(sqlite_url(tmp_path / "study.db"))
        if not t.state.is_finished() and t.state is not TrialState.WAITING
    ]


def test_sigkill_between_measurement_and_tell_runs_the_trial_again(tmp_path):
    """A runner killed while it writes a measurement (some attributes stored, the trial still RUNNING) must not
    leave a trial that looks measured: the recovery fails it and queues it again."""
    from gpupair_search.search.engine.session import open_study, resolve_inputs
    from gpupair_search.search.policy.planner import ExtensionOptions

    settings = four_pairs(tmp_path)
    inputs = resolve_inputs(None, settings, FIXTURES / "models.json", FIXTURES, False, "400MiB", "250MiB")
    storage = sqlite_url(tmp_path / "study.db")
    fs = open_study(inputs, storage, tmp_path / "results", ExtensionOptions(), "cpu")
    fs.enqueue_initial()
    trial = fs.pop_trial()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    fs.study._storage.set_trial_system_attr(trial._trial_id, "gpupair:pid", dead.pid)  # its runner is gone
    trial.set_user_attr("outcome", "ok")  # killed here, in the middle of record_result
    trial.set_user_attr("peak_mib", 42.0)
    assert fs.recover_stale() == 1  # failed, and queued again, once
    trials = fs.study.get_trials()
    assert trials[trial.number].state is TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retries) == 1 and retries[0].state is TrialState.WAITING


def test_packed_the_same_faults_leave_no_process_and_lose_no_trial(tmp_path, monkeypatch):
    """--parallel 2: a packed failure is measured again alone (two runs of it, not a duplicate); the hang times
    out both times, the dying background is a FAIL both times, and an unwritable results dir is a clear error."""
    monkeypatch.setenv("GPUPAIR_FAULT_RUNNER_ARGS", "--parallel 2")
    for name in ("hang", "background_dies", "results_unwritable"):
        report = SCENARIOS[name](tmp_path / name)
        _passed(report)
