"""The shared skeleton of the built-in workloads (workloads/common.py): how a script starts and its epoch loop.

In-process and on the CPU with a tiny model, so each test takes well under a second; the full scripts run
as subprocesses in test_workloads_smoke.py.
"""

import argparse
import re
import time

import pytest

torch = pytest.importorskip("torch")

from gpupair_search.workloads.common import (  # noqa: E402 - after the importorskip
    BatchPool,
    PerModelBatchSize,
    TrainingLoop,
    parameter_count,
    parse_args,
    start_workload,
)

BATCH_SIZE = PerModelBatchSize("name", {"small": 4, "large": 64})


def reid_like_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("-n", "--name", choices=sorted(BATCH_SIZE.defaults), default="small")
    parser.add_argument("--seed", type=int, default=3)
    return parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], 4), (["-n", "large"], 64), (["-n", "large", "--batch-size", "7"], 7), (["--batch-size", "1"], 1)],
)
def test_the_batch_size_defaults_to_the_models_own_unless_given(argv, expected):
    args = parse_args(reid_like_parser(), argv, BATCH_SIZE)

    assert args.batch_size == expected
    assert args.max_steps == 0


def test_help_lists_the_per_model_defaults_and_ends_with_max_steps():
    parser = reid_like_parser()
    parse_args(parser, ["-n", "small"], BATCH_SIZE)
    text = parser.format_help()

    assert "default per model: small 4, large 64" in text
    assert re.findall(r"--[a-z-]+ [A-Z_]+", text)[-2:] == ["--batch-size BATCH_SIZE", "--max-steps MAX_STEPS"]


def test_a_bad_batch_size_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(reid_like_parser(), ["--batch-size", "0"], BATCH_SIZE)

    assert exit_info.value.code == 2
    assert "'0' must be an integer >= 1" in capsys.readouterr().err


def test_start_workload_seeds_from_the_seed_flag():
    args, device = start_workload(reid_like_parser(), ["--seed", "11"], BATCH_SIZE)
    first = torch.rand(3)
    start_workload(reid_like_parser(), ["--seed", "11"], BATCH_SIZE)

    assert torch.equal(first, torch.rand(3))
    assert (args.seed, args.batch_size) == (11, 4)
    assert device.type in ("cpu", "cuda")


def test_the_training_loop_times_and_reports_every_step_but_the_warm_up(capsys):
    device = torch.device("cpu")
    model = torch.nn.Linear(3, 1)
    train = BatchPool(lambda n, gen: (torch.rand(n, 3, generator=gen),), 2, num_samples=6, device=device)
    loop = TrainingLoop(device, train, epochs=2)
    modes_in_steps, modes_after = [], []

    for _epoch in loop:
        for (x,) in loop.batches(model):
            modes_in_steps.append(model.training)
            loss = model(x).pow(2).mean()
            loop.step_done(loss)
        modes_after.append(model.training)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[gpupair] startup_s=")
    assert [line.rsplit(" loss ", 1)[0] for line in lines[1:]] == ["Epoch 1 step 3/3", "Epoch 2 step 3/3"]
    assert modes_in_steps == [True] * 6 and modes_after == [False, False]
    assert (loop.timer.steps, loop.timer.samples) == (5, 10)  # the first step is the warm-up
    assert loop.timer.seconds > 0


def test_parameter_count_counts_every_parameter():
    assert parameter_count(torch.nn.Linear(3, 2)) == 3 * 2 + 2


def test_the_training_loop_prints_machine_progress_on_stderr_at_the_first_and_each_epochs_last_step(capsys):
    device = torch.device("cpu")
    model = torch.nn.Linear(3, 1)
    loop = TrainingLoop(
        device, BatchPool(lambda n, gen: (torch.rand(n, 3, generator=gen),), 2, num_samples=6, device=device), epochs=2
    )
    before = time.monotonic()
    for _ in loop:
        for (x,) in loop.batches(model):
            loop.step_done(model(x).pow(2).mean())
    after = time.monotonic()
    err = capsys.readouterr().err
    lines = [re.sub(r" t=[\d.]+$", "", line) for line in err.splitlines()]
    # fast steps: within PROGRESS_INTERVAL_S only the first step and each epoch's last are printed
    assert lines[0] == "[gpupair] progress steps=1 samples=2 epoch=1"
    assert "[gpupair] progress steps=3 samples=6 epoch=1" in lines
    assert lines[-1] == "[gpupair] progress steps=6 samples=12 epoch=2"
    # each line carries the moment its steps were done, on the host's monotonic clock
    stamps = [float(t) for t in re.findall(r" t=([\d.]+)$", err, re.MULTILINE)]
    assert len(stamps) == len(lines) and stamps == sorted(stamps)
    assert before - 0.001 <= stamps[0] and stamps[-1] <= after + 0.001


def test_min_train_s_keeps_the_first_epoch_training_on_the_same_batches():
    device = torch.device("cpu")
    model = torch.nn.Linear(3, 1)
    train = BatchPool(lambda n, gen: (torch.rand(n, 3, generator=gen),), 2, num_samples=6, device=device)
    loop = TrainingLoop(device, train, epochs=2, min_train_s=0.3)
    steps = {1: 0, 2: 0}
    started = time.perf_counter()
    for epoch in loop:
        for (x,) in loop.batches(model):
            assert any(x is b[0] for b in train.batches)  # no new data: the same memory
            steps[epoch] += 1
            loop.step_done(model(x).pow(2).mean())
            time.sleep(0.01)
        if epoch == 1:
            assert time.perf_counter() - started >= 0.3
    assert steps[1] > 3 and steps[2] == 3  # only the first epoch is lengthened
