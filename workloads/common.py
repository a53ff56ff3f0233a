"""Shared helpers for the built-in synthetic training workloads.

Each workload trains a real model, randomly initialised, on random data of the
real shapes. A few batches are generated once, kept on the device and cycled
to fill an epoch, so data loading costs nothing and what gets measured (GPU
memory, step time) is the model's own.

Output contract (parsed by gpupair-search and bench/profile_workloads.py):
  progress lines    Epoch 1 step 100/1875 loss 2.3012   (every PROGRESS_EVERY steps and at an epoch's last)
  machine progress  [gpupair] progress steps=N samples=M epoch=E t=T  (on stderr, which the launcher logs
                    with stdout; cumulative training steps and samples, warm-up
                    step included; T is time.monotonic() when the steps were done; after the first step,
                    then at most every PROGRESS_INTERVAL_S and at an epoch's last step; the launcher
                    places them in time to find the steady-state window)
  metric lines      in the log_patterns format of settings/models.json
  on CUDA           [gpupair] max_memory_reserved_mib=R max_memory_allocated_mib=A
  torch workloads   [gpupair] steps=S seconds_per_step=T samples_per_second=Q
                    [gpupair] startup_s=U (imports, CUDA context, model and data, until the first step ended)
  every workload    [gpupair] total_s=W
  last line         [SUCCESS] Training completed
Failures exit non-zero with a traceback; a CUDA OOM is left as the ordinary
torch.OutOfMemoryError.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only where a function needs it: bug-localization runs without it
    import torch

SUCCESS_MARKER = "[SUCCESS] Training completed"
_STARTED = time.perf_counter()  # this module is imported before torch: about when the process started
PROGRESS_EVERY = 50  # steps between progress lines
PROGRESS_INTERVAL_S = 0.1  # at most this long between machine progress lines


def log(*parts) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------- arguments


def _typed(convert, check, what):
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {convert.__name__}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value

    parse.__name__ = what  # shown by argparse in its error messages
    return parse


# settings/models.json declares each of these as the hyperparameter's bounds ("min": 1, ...), so that validate refuses
# what a workload would refuse at start; tests/test_builtin_bounds.py runs these parsers to keep the two equal.
positive_int = _typed(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _typed(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _typed(float, lambda v: v > 0 and math.isfinite(v), "a number > 0")
non_negative_float = _typed(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0")
dropout_rate = _typed(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def add_max_steps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-steps",
        type=non_negative_int,
        default=0,
        help="at most N training steps per epoch and N evaluation batches per "
        "evaluation set (0 = no limit); for short probes",
    )


def add_min_train_s(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-train-s",
        type=non_negative_float,
        default=0.0,
        help="the first epoch trains at least S seconds, cycling its batches past --max-steps (0 = off); gives a "
        "probe a steady-state window long enough to measure throughput and energy",
    )


@dataclass(frozen=True)
class PerModelBatchSize:
    """A --batch-size whose default depends on the model, as in the originals that have one per model.

    model_dest is the argparse dest of the model choice; defaults maps each model to its batch size (the
    same numbers as the entry's 'model_defaults' in settings/models.json).
    """

    model_dest: str
    defaults: Mapping[str, int]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=None,
            help="default per model: " + ", ".join(f"{k} {v}" for k, v in self.defaults.items()),
        )

    def resolve(self, args: argparse.Namespace) -> None:
        """Fill in the model's default where --batch-size was not given."""
        if args.batch_size is None:
            args.batch_size = self.defaults[getattr(args, self.model_dest)]


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, batch_size: PerModelBatchSize | None = None
) -> argparse.Namespace:
    """Add the options every workload ends with (--min-train-s, a per-model --batch-size if given, then --max-steps) and
    parse argv; the per-model batch size is resolved, so args.batch_size is always a number."""
    add_min_train_s(parser)
    if batch_size is not None:
        batch_size.add_to(parser)
    add_max_steps(parser)
    args = parser.parse_args(argv)
    if batch_size is not None:
        batch_size.resolve(args)
    return args


def start_workload(
    parser: argparse.ArgumentParser, argv: list[str] | None, batch_size: PerModelBatchSize | None = None
) -> tuple[argparse.Namespace, torch.device]:
    """How every torch workload starts: parse_args, seed every generator from --seed before any model or
    data is made (so the same argv trains the same numbers), then pick the device."""
    args = parse_args(parser, argv, batch_size)
    seed_everything(args.seed)
    return args, pick_device()


# ---------------------------------------------------------------- device, seeds, data


def pick_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def on_device(device):
    """Where a model is made: ``with on_device(device): model = Net()`` initialises its weights on the training
    device instead of on the host and then copying them (most of a warm start's time for the larger models,
    bench/job_start.py). The weights still follow --seed, through the device's
    generator, so the same argv on the same device trains the same numbers."""
    import torch

    return torch.device(device)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def num_steps(num_samples: int, batch_size: int, max_steps: int = 0) -> int:
    """Batches in one pass over num_samples, capped by max_steps when > 0."""
    steps = math.ceil(num_samples / batch_size)
    return min(steps, max_steps) if max_steps else steps


class BatchPool:
    """One pass = `steps` batches, cycled from a few random batches kept on the device.

    make_batch(batch_size, generator) returns a tuple of CPU tensors. Every
    batch is full-sized (the real loaders' smaller last batch is ignored).
    """

    def __init__(self, make_batch, batch_size, num_samples, device, max_steps=0, seed=0, pool_size=4):
        import torch

        self.batch_size = batch_size
        self.steps = num_steps(num_samples, batch_size, max_steps)
        generator = torch.Generator().manual_seed(seed)
        self.batches = [
            tuple(t.to(device) for t in make_batch(batch_size, generator)) for _ in range(min(pool_size, self.steps))
        ]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for i in range(self.steps):
            yield self.batches[i % len(self.batches)]


# ---------------------------------------------------------------- reporting


def log_config(**fields) -> None:
    log("[gpupair] config " + " ".join(f"{k}={v}" for k, v in fields.items()))


def log_progress(epoch: int, step: int, steps: int, loss) -> None:
    """Print every PROGRESS_EVERY steps and at the last step (loss: a tensor or float)."""
    if step % PROGRESS_EVERY == 0 or step == steps:
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        log(f"Epoch {epoch} step {step}/{steps} loss {value:.4f}")


class ProgressReporter:
    """The machine progress line: often enough for a 30-step probe to show its steady state, rarely enough
    (PROGRESS_INTERVAL_S) that printing costs nothing. On CUDA the device is synchronised before a line, so
    its moment is when the steps were done, not when they were queued."""

    def __init__(self, device) -> None:
        self.cuda = device is not None and getattr(device, "type", "") == "cuda"
        self.steps = self.samples = 0
        self._last = -math.inf

    def step_done(self, samples: int, epoch: int, last_of_epoch: bool = False) -> None:
        self.steps += 1
        self.samples += samples
        now = time.perf_counter()
        if self.steps == 1 or last_of_epoch or now - self._last >= PROGRESS_INTERVAL_S:
            if self.cuda:
                import torch

                torch.cuda.synchronize()
            self._last = now
            print(
                f"[gpupair] progress steps={self.steps} samples={self.samples} epoch={epoch} t={time.monotonic():.4f}",
                file=sys.stderr,
                flush=True,
            )


class StepTimer:
    """Wall time of training steps only, excluding the run's first (warm-up) step.

    Per epoch: start() before the training loop, step_done(n) after each
    step, stop() after the loop. Evaluation is not timed. On CUDA the clock is
    read after torch.cuda.synchronize().
    """

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.steps = 0
        self.samples = 0
        self.seconds = 0.0
        self._warm = False
        self._t0 = None

    def _now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self._t0 = self._now()

    def step_done(self, samples: int) -> None:
        if not self._warm:  # the warm-up step is not counted: restart the clock
            self._warm = True
            self.start()
            log(f"[gpupair] startup_s={self._t0 - _STARTED:.2f}")
            return
        self.steps += 1
        self.samples += samples

    def stop(self) -> None:
        self.seconds += self._now() - self._t0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else float("nan")

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.steps and self.seconds > 0 else float("nan")


class TrainingLoop:
    """The epoch loop's bookkeeping, the same in every torch workload; the step itself is the workload's.

        loop = TrainingLoop(device, train, epochs)
        for epoch in loop:
            for x, y in loop.batches(model):
                loss = ...                 # forward, backward, optimizer step
                loop.step_done(loss)
            ...                            # evaluation (model in eval mode), not timed
        finish(device, loop.timer)

    The step's own variables stay in the caller's frame, so tensors live exactly as long as in a plain loop.
    ``min_train_s`` (the workloads' --min-train-s) keeps the first epoch training that long.
    """

    def __init__(self, device: torch.device, train: BatchPool, epochs: int, min_train_s: float = 0.0):
        self.train = train
        self.epochs = epochs
        self.min_train_s = min_train_s
        self.timer = StepTimer(device)
        self.progress = ProgressReporter(device)
        self.epoch = 0
        self.step = 0

    def __iter__(self) -> Iterator[int]:
        for self.epoch in range(1, self.epochs + 1):  # noqa: B020 - the loop keeps its place in self
            yield self.epoch

    def batches(self, model: torch.nn.Module) -> Iterator[tuple]:
        """This epoch's training batches, with the model in training mode and the step clock running; after
        the last, the clock stopped and the model in evaluation mode, for the epoch's evaluation."""
        model.train()
        self.timer.start()
        started = time.perf_counter()
        for self.step, batch in enumerate(self.train, 1):  # noqa: B020 - the loop keeps its place in self
            yield batch
        if self.epoch == 1:
            # --min-train-s: more of the same batches (the same memory), until the first epoch trained long enough
            while time.perf_counter() - started < self.min_train_s:
                self.step += 1
                yield self.train.batches[self.step % len(self.train.batches)]
        self.timer.stop()
        model.eval()

    def step_done(self, loss) -> None:
        """After each step: count it (a full batch) and print the progress line when one is due."""
        self.timer.step_done(self.train.batch_size)
        if self.step <= len(self.train):  # steps added by --min-train-s show in the machine lines only
            log_progress(self.epoch, self.step, len(self.train), loss)
        self.progress.step_done(self.train.batch_size, self.epoch, last_of_epoch=self.step == len(self.train))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cuda_context_mib() -> float | None:
    """This process's GPU memory outside torch's allocator (CUDA context, cuBLAS/cuDNN handles): NVML's
    reading of the process minus what torch reserves now. None without nvidia-ml-py. Reported so that
    max_memory_reserved + context is the process's own account of its peak, to check monitors against."""
    import os

    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        used = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            used += sum(
                p.usedGpuMemory or 0
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                if p.pid == os.getpid()
            )
        return used / 2**20 - torch.cuda.memory_reserved() / 2**20 if used else None
    except Exception:  # noqa: BLE001 - a missing or failing NVML only means no context line
        return None


def finish(device, timer: StepTimer | None) -> None:
    """Memory and throughput lines, then the success marker as the very last line."""
    if device is not None and device.type == "cuda":
        import torch

        log(
            f"[gpupair] max_memory_reserved_mib={torch.cuda.max_memory_reserved() / 2**20:.1f} "
            f"max_memory_allocated_mib={torch.cuda.max_memory_allocated() / 2**20:.1f}"
        )
        context = cuda_context_mib()
        if context is not None:
            log(f"[gpupair] context_mib={context:.1f}")
    if timer is not None:
        log(
            f"[gpupair] steps={timer.steps} seconds_per_step={timer.seconds_per_step:.6f} "
            f"samples_per_second={timer.samples_per_second:.2f}"
        )
    log(f"[gpupair] total_s={time.perf_counter() - _STARTED:.2f}")
    log(SUCCESS_MARKER)
