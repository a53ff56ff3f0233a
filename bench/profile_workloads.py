#!/usr/bin/env python3
"""Profile the built-in GPU workloads: GPU memory and step time at several batch sizes.

For every GPU workload of settings/models.json (all but bug-localization) and
every batch size asked for, run the workload alone as a subprocess (argv
list, never a shell) for one epoch of --max-steps steps, sample NVML every
--interval seconds for that process's PID in a thread, and record

  nvml_peak_mib              peak NVML usedGpuMemory of the process (includes
                             its CUDA context, ~0.5-0.8 GiB)
  max_memory_reserved_mib    the workload's own torch.cuda.max_memory_reserved()
  max_memory_allocated_mib   ... and max_memory_allocated()
  seconds_per_step, samples_per_second   training steps after a warm-up step
  status                     ok | oom | failed | timeout  (an OOM is a result)

Usage, from the repository root on the GPU machine:
  python bench/profile_workloads.py
  python bench/profile_workloads.py --models examples/mnist,VulBERTa --batch-sizes default,x2,256
  python bench/profile_workloads.py --dry-run          # only print the commands
Batch sizes: "default" (the script's own default, read from its config line),
"xF" (F times the default, rounded, at least 1; runs the default too), or an
integer. Writes one JSON file (--out, default results/workload_profile_<UTC>.json,
rewritten after every run) and prints a markdown table.

Needs the nvidia-ml-py package (import pynvml) and an NVIDIA driver; imports
cleanly without either.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    import pynvml
except ImportError:  # reported when NVML is needed, not at import time
    pynvml = None

from gpupair_search.launcher.spec import JobConfig

ROOT = Path(__file__).resolve().parents[1]

CPU_ONLY_REPOS = {"bug-localization-by-dnn-and-rvsm"}
SUCCESS_MARKER = "[SUCCESS] Training completed"
MIB = 2**20


class NvmlUnavailable(RuntimeError):
    pass


# ---------------------------------------------------------------- NVML


def nvml_start():
    """Initialise NVML and return the device handles, or raise NvmlUnavailable with the reason."""
    if pynvml is None:
        raise NvmlUnavailable("the Python module 'pynvml' is missing: pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML could not be initialised ({exc}): no NVIDIA driver or GPU here?") from exc
    if not handles:
        raise NvmlUnavailable("NVML sees no GPU")
    return handles


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_info(handles) -> dict:
    names = [_text(pynvml.nvmlDeviceGetName(h)) for h in handles]
    return {
        "card": names[0] if len(set(names)) == 1 else ", ".join(names),
        "cards": names,
        "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
        "memory_total_mib": [round(pynvml.nvmlDeviceGetMemoryInfo(h).total / MIB) for h in handles],
    }


def device_used_mib(handles) -> float:
    return sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) / MIB


class NvmlSampler(threading.Thread):
    """Peak NVML memory of one PID (summed over devices) and of the devices, every `interval` s."""

    def __init__(self, handles, pid: int, interval: float):
        super().__init__(daemon=True)
        self.handles, self.pid, self.interval = handles, pid, interval
        self.peak_process_mib = 0.0
        self.peak_device_mib = 0.0
        self.samples = 0
        self.samples_with_pid = 0
        self.errors = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        try:
            used, seen = 0, False
            for h in self.handles:
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                    if proc.pid == self.pid and proc.usedGpuMemory is not None:
                        used += proc.usedGpuMemory
                        seen = True
            device = device_used_mib(self.handles)
        except pynvml.NVMLError:
            self.errors += 1
            return
        self.samples += 1
        self.samples_with_pid += seen
        self.peak_process_mib = max(self.peak_process_mib, used / MIB)
        self.peak_device_mib = max(self.peak_device_mib, device)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


# ---------------------------------------------------------------- workloads


def select_workloads(models: dict, wanted: str | None) -> list[tuple[str, str]]:
    gpu = [
        (repo, model)
        for repo, entry in models.items()
        if not repo.startswith("_") and repo not in CPU_ONLY_REPOS
        for model in entry["models"]
    ]
    if not wanted:
        return gpu
    chosen = []
    for item in (w.strip() for w in wanted.split(",") if w.strip()):
        matches = [(r, m) for r, m in gpu if item in (r, f"{r}/{m}")]
        if not matches:
            sys.exit(
                f"error: --models: no GPU workload {item!r}; choose from: " + ", ".join(f"{r}/{m}" for r, m in gpu)
            )
        chosen += [m for m in matches if m not in chosen]
    return chosen


def parse_batch_sizes(spec: str) -> list[str]:
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    for t in tokens:
        ok = t == "default" or re.fullmatch(r"x\d+(\.\d+)?", t) or (t.isdigit() and int(t) >= 1)
        if not ok:
            sys.exit(f"error: --batch-sizes: {t!r} is not 'default', 'xF' (e.g. x0.5) or an integer >= 1")
    if any(t.startswith("x") for t in tokens) and "default" not in tokens:
        tokens.insert(0, "default")  # the multipliers need the default batch size
    elif "default" in tokens:
        tokens.remove("default")
        tokens.insert(0, "default")
    return tokens


_FLOAT = r"([0-9.]+|nan|inf)"


def parse_output(text: str) -> dict:
    def number(pattern):
        m = re.search(pattern, text)
        value = float(m.group(1)) if m else None
        return value if value is not None and math.isfinite(value) else None  # nan: not measured

    batch = re.search(r"\[gpupair\] config .*?\bbatch_size=(\d+)", text)
    steps = re.search(r"\[gpupair\] steps=(\d+)", text)
    return {
        "batch_size_reported": int(batch.group(1)) if batch else None,
        "max_memory_reserved_mib": number(rf"max_memory_reserved_mib={_FLOAT}"),
        "max_memory_allocated_mib": number(rf"max_memory_allocated_mib={_FLOAT}"),
        "steps": int(steps.group(1)) if steps else None,
        "seconds_per_step": number(rf"seconds_per_step={_FLOAT}"),
        "samples_per_second": number(rf"samples_per_second={_FLOAT}"),
        "success_marker": SUCCESS_MARKER in text.splitlines(),
        "oom": "OutOfMemoryError" in text or "CUDA out of memory" in text,
    }


@functools.cache
def _registry(models_file: Path):
    from gpupair_search.launcher.registry import Registry

    return Registry.load(models_file, base_dir=models_file.resolve().parent.parent)


def run_one(entry, repo, model, batch_size, args, handles) -> dict:
    hyper = {"epochs": 1, "max_steps": args.max_steps}
    if batch_size is not None:
        hyper["batch_size"] = batch_size
    hyper = {k: v for k, v in hyper.items() if k in entry["supported_hyperparams"]}
    command = _registry(args.models_file).command(JobConfig(repo, model, hyper))  # as the launcher builds it
    argv, cwd = list(command.argv), command.cwd
    row = {"repo": repo, "model": model, "batch_size": batch_size, "argv": argv, "cwd": str(cwd)}
    if args.dry_run:
        print(f"(cd {shlex.quote(str(cwd))} && {shlex.join(argv)})")
        return row

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    baseline = device_used_mib(handles) if handles else None
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    sampler = NvmlSampler(handles, proc.pid, args.interval) if handles else None
    if sampler:
        sampler.start()
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group
        output, _ = proc.communicate()
    wall = time.perf_counter() - start
    if sampler:
        sampler.stop()

    parsed = parse_output(output)
    if timed_out:
        status = "timeout"
    elif parsed["oom"]:
        status = "oom"
    elif proc.returncode == 0 and parsed["success_marker"]:
        status = "ok"
    else:
        status = "failed"
    row.update(status=status, returncode=proc.returncode, wall_seconds=round(wall, 2), **parsed)
    if row["batch_size"] is None:
        row["batch_size"] = parsed["batch_size_reported"]
    if sampler:
        row.update(
            nvml_peak_mib=round(sampler.peak_process_mib, 1),
            nvml_samples=sampler.samples,
            nvml_samples_with_pid=sampler.samples_with_pid,
            nvml_errors=sampler.errors,
            device_baseline_mib=round(baseline, 1),
            device_peak_over_baseline_mib=round(sampler.peak_device_mib - baseline, 1),
        )
        if sampler.samples_with_pid == 0 and status == "ok":
            print(
                f"warning: NVML never listed PID {proc.pid} ({repo}/{model}); see "
                "device_peak_over_baseline_mib (PID namespace mismatch?)",
                file=sys.stderr,
            )
    if status != "ok":
        row["output_tail"] = output[-3000:]
    return row


# ---------------------------------------------------------------- report


def markdown_table(rows: list[dict]) -> str:
    def cell(value, fmt="{:.0f}"):
        return "" if value is None else fmt.format(value)

    lines = [
        "| workload | batch | status | NVML peak MiB | reserved MiB | allocated MiB | NVML - reserved MiB "
        "| s/step | samples/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        nvml, reserved = r.get("nvml_peak_mib"), r.get("max_memory_reserved_mib")
        overhead = nvml - reserved if nvml and reserved is not None else None
        lines.append(
            f"| {r['repo']}/{r['model']} | {cell(r.get('batch_size'), '{}')} | {r.get('status', '')} "
            f"| {cell(nvml)} | {cell(reserved)} | {cell(r.get('max_memory_allocated_mib'))} "
            f"| {cell(overhead)} | {cell(r.get('seconds_per_step'), '{:.4f}')} "
            f"| {cell(r.get('samples_per_second'), '{:.1f}')} |"
        )
    return "\n".join(lines)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--models-file",
        type=Path,
        default=ROOT / "settings" / "models.json",
        help="models file (default: settings/models.json); relative 'path's resolve "
        "against the directory that holds its settings/ folder",
    )
    parser.add_argument("--models", help="comma-separated repo or repo/model (default: every GPU workload)")
    parser.add_argument("--batch-sizes", default="default,x0.5,x2", help="default: %(default)s")
    parser.add_argument("--max-steps", type=int, default=20, help="training steps and eval batches (default 20)")
    parser.add_argument("--interval", type=float, default=0.01, help="NVML sampling period in s (default 0.01)")
    parser.add_argument("--timeout", type=float, default=600, help="per run, in s (default 600)")
    parser.add_argument("--out", type=Path, help="JSON file (default results/workload_profile_<UTC>.json)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--no-nvml",
        action="store_true",
        help="run without NVML sampling (to try the harness on a machine without a GPU)",
    )
    args = parser.parse_args(argv)
    if args.max_steps < 1 or args.interval <= 0 or args.timeout <= 0:
        parser.error("--max-steps must be >= 1, --interval and --timeout > 0")
    args.models_file = args.models_file.resolve()
    models = json.loads(args.models_file.read_text(encoding="utf-8"))["models"]
    workloads = select_workloads(models, args.models)
    batch_tokens = parse_batch_sizes(args.batch_sizes)

    handles, info = None, {"card": None, "driver": None}
    if not (args.dry_run or args.no_nvml):
        try:
            handles = nvml_start()
        except NvmlUnavailable as exc:
            print(
                f"error: NVML is unavailable: {exc}\nThis benchmark measures GPU memory through NVML; "
                "run it on the GPU machine (or use --dry-run / --no-nvml).",
                file=sys.stderr,
            )
            return 2
        info = nvml_info(handles)

    stamp = dt.datetime.now(dt.timezone.utc)
    out = args.out or ROOT / "results" / f"workload_profile_{stamp:%Y%m%dT%H%M%SZ}.json"
    report = {
        **info,
        "torch": package_version("torch"),
        "torchvision": package_version("torchvision"),
        "timm": package_version("timm"),
        "python": platform.python_version(),
        "date": stamp.isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "models_file": str(args.models_file),
        "max_steps": args.max_steps,
        "sample_interval_s": args.interval,
        "rows": [],
    }
    if not args.dry_run:
        print(f"card: {info['card']}  driver: {info['driver']}  torch: {report['torch']}  -> {out}", flush=True)

    for repo, model in workloads:
        entry = models[repo]
        default = None
        for token in batch_tokens:
            if token == "default":
                batch = None
            elif token.startswith("x"):
                if default is None:
                    print(
                        f"# {repo}/{model} {token}: "
                        + (
                            "batch size known after the default run"
                            if args.dry_run
                            else "skipped, the default batch size is unknown"
                        ),
                        flush=True,
                    )
                    continue
                batch = max(1, round(default * float(token[1:])))
            else:
                batch = int(token)
            if batch is not None and any(
                r["repo"] == repo and r["model"] == model and r["batch_size"] == batch for r in report["rows"]
            ):
                continue  # a multiplier landed on a size already run
            row = run_one(entry, repo, model, batch, args, handles)
            if args.dry_run:
                continue
            row["requested"] = token
            if token == "default":
                default = row.get("batch_size_reported")
            report["rows"].append(row)
            print(
                f"{repo}/{model} batch {row['batch_size']}: {row['status']}  NVML {row.get('nvml_peak_mib')} MiB  "
                f"reserved {row.get('max_memory_reserved_mib')} MiB  s/step {row.get('seconds_per_step')}",
                flush=True,
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    if not args.dry_run:
        print()
        print(markdown_table(report["rows"]))
        print(f"\nwrote {out}")
    if handles:
        pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
