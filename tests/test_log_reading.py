"""What a job's log says about how it ended: an out-of-memory error is found where it is an error, and only there."""

from __future__ import annotations

import pytest

from gpupair_search.launcher.outcome import scan_log

OOM_ERRORS = [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB.",
    "torch.cuda.OutOfMemoryError: CUDA out of memory.",
    "RuntimeError: CUDA error: out of memory",
    "RuntimeError: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "2026-12-07 10:00:00 ERROR RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB",
    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)",  # a job printing what it caught
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried",
]
MENTIONS = [
    "tip: if you hit 'CUDA out of memory', lower --batch-size",
    "# retries with a smaller batch on CUDA out of memory",
    "Epoch 1: no CUDA out of memory seen, all fine",
]


@pytest.mark.parametrize("line", OOM_ERRORS)
def test_an_out_of_memory_error_is_found(line):
    log = f"Epoch 1 step 1/10 loss 0.5\nTraceback (most recent call last):\n  ...\n{line}\n"
    assert scan_log(log).oom


@pytest.mark.parametrize("line", MENTIONS)
def test_a_line_that_only_mentions_out_of_memory_is_no_error(line):
    """A start-up tip would otherwise turn every trial of the job into a false OOM, and reduce it for nothing."""
    assert not scan_log(f"{line}\nEpoch 1 step 1/10 loss 0.5\n[SUCCESS] Training completed\n").oom
