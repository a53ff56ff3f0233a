"""The probe's DataLoader hook, in a real Python process: it bounds every iterator, says what it saw, chains a
job's own sitecustomize, and never breaks a job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from optuna.trial import TrialState

from gpupair_search.launcher.probe_events import HOOK_DIR, ProbeEvents, hook_environment
from gpupair_search.search.record.trial_record import TrialView
from gpupair_search.search.views.console import time_and_probe_line

TRAINER = """
import torch
from torch.utils.data import DataLoader, TensorDataset
data = TensorDataset(torch.randn(400, 4))
for epoch in range(2):
    trained = sum(1 for _ in DataLoader(data, batch_size=2))
    with torch.no_grad():
        evaluated = sum(1 for _ in DataLoader(data, batch_size=2))
    print(epoch, trained, evaluated)
"""


def python(tmp_path: Path, code: str, env: dict[str, str], *extra_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **env}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in extra_path), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


def test_every_dataloader_iterator_is_bounded_and_its_role_reported(tmp_path):
    events = tmp_path / "job.events"
    done = python(tmp_path, TRAINER, hook_environment({}, events, 5))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["0 5 5", "1 5 5"]  # 200 batches each, 5 yielded
    seen = ProbeEvents(events).poll()
    assert seen.hooked and seen.train_started and seen.trained_step and seen.bounded
    assert seen.eval_started and seen.eval_ended and seen.train_after_eval
    assert seen.effective


def test_without_the_events_variable_nothing_is_bounded(tmp_path):
    done = python(tmp_path, TRAINER, {}, HOOK_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["0 200 200", "1 200 200"]


def test_a_jobs_own_sitecustomize_still_runs(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import builtins\nbuiltins.LAB_SETUP = 'done'\n")
    env = hook_environment({"PYTHONPATH": str(own)}, tmp_path / "job.events", 5)
    done = python(tmp_path, "print(LAB_SETUP)", env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


def test_a_hook_that_cannot_patch_leaves_the_job_running_and_says_so(tmp_path):
    """A torch whose DataLoader module lacks what the hook patches (another version, a stand-in)."""
    fake = tmp_path / "fake"
    (fake / "torch" / "utils" / "data").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("")
    (fake / "torch" / "utils" / "__init__.py").write_text("")
    (fake / "torch" / "utils" / "data" / "__init__.py").write_text("")
    (fake / "torch" / "utils" / "data" / "dataloader.py").write_text("VALUE = 42\n")
    events = tmp_path / "job.events"
    env = hook_environment({"PYTHONPATH": str(fake)}, events, 5)
    done = python(tmp_path, "import torch.utils.data.dataloader as d; print(d.VALUE)", env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    seen = ProbeEvents(events).poll()
    assert seen.failed and not seen.effective


def view(number: int, attrs: dict) -> TrialView:
    return TrialView.of(number, TrialState.COMPLETE, "a+b", 8, 8, True, {"outcome": "ok", "peak_mib": 100.0, **attrs})


def test_status_says_the_median_time_outside_the_jobs_and_how_trials_were_probed():
    bounded = {
        "foreground": {"rule": "bounded steps", "evaluation": "reached"},
        "background": {"rule": "bounded steps", "evaluation": "reached"},
    }
    plateau = {"foreground": {"rule": "plateau", "evaluation": "not reached"}}
    views = [
        view(0, {"outside_jobs_s": 0.4, "probe": bounded}),
        view(1, {"outside_jobs_s": 0.6, "probe": bounded}),
        view(2, {"outside_jobs_s": 2.0, "probe": plateau}),
        view(3, {}),
    ]
    assert time_and_probe_line(views) == (
        "time outside the jobs: median 0.60 s per trial (max 2.00 s, 3 trials). "
        "2 × probe: bounded steps; 1 × probe: plateau, evaluation not reached"
    )
    assert time_and_probe_line([view(0, {})]) == ""


def test_an_evaluation_before_any_training_is_not_the_end_of_the_first_epoch(tmp_path):
    """A sanity evaluation first (as some trainers do): the next training epoch is the first, not a repeat."""
    events = tmp_path / "job.events"
    events.write_text(
        "hooked limit=5 pid=1\nstart eval a pid=1\nbounded eval a 5 pid=1\nstart train b pid=1\nstep train b pid=1\n"
    )
    seen = ProbeEvents(events).poll()
    assert seen.trained_step and seen.eval_ended and not seen.train_after_eval
    with events.open("a") as fh:
        fh.write("bounded train b 5 pid=1\nstart eval c pid=1\nend eval c 3 pid=1\nstart train d pid=1\n")
    assert seen.poll().train_after_eval


def test_a_loop_that_recreates_its_iterator_without_evaluation_is_repeating_by_its_third_iterator(tmp_path):
    events = tmp_path / "job.events"
    events.write_text(
        "".join(f"start train {i} pid=1\nstep train {i} pid=1\nbounded train {i} 5 pid=1\n" for i in "ab")
    )
    seen = ProbeEvents(events).poll()
    assert seen.train_starts == 2 and not seen.repeating
    with events.open("a") as fh:
        fh.write("start train c pid=1\n")
    assert seen.poll().repeating and not seen.train_after_eval


def test_a_finished_evaluation_iterator_holds_on_so_that_what_it_held_is_sampled(tmp_path):
    code = (
        "import time, torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
        "data = TensorDataset(torch.randn(40, 4))\nwith torch.no_grad():\n    t = time.monotonic()\n"
        "    n = sum(1 for _ in DataLoader(data, batch_size=2))\n    print(n, round(time.monotonic() - t, 1))\n"
    )
    done = python(tmp_path, code, hook_environment({}, tmp_path / "job.events", 5, dwell_s=1.0))
    assert done.returncode == 0, done.stderr
    batches, seconds = done.stdout.split()
    assert batches == "5" and float(seconds) >= 1.0


def test_an_evaluation_loop_left_with_break_ends_when_training_starts_again(tmp_path):
    """``for i, batch in enumerate(eval_loader): ... if i == n: break`` never exhausts its iterator: the next
    training iterator says the pass is over, so a step-based loop is stopped once it repeats."""
    events = tmp_path / "job.events"
    events.write_text("start train a pid=1\nstep train a pid=1\nbounded train a 5 pid=1\nstart eval b pid=1\n")
    seen = ProbeEvents(events).poll()
    assert seen.eval_started and not seen.eval_ended and not seen.repeating
    with events.open("a") as fh:
        fh.write("start train c pid=1\n")
    assert seen.poll().eval_ended and seen.train_after_eval and seen.repeating


def test_a_training_step_is_seen_in_a_loop_without_a_dataloader(tmp_path):
    """The hook hears torch's global optimizer step hook: a job batching in its own loop (as the built-ins do)
    has trained a step once its optimizer stepped, written once however many steps follow."""
    code = (
        "import torch\n"
        "m = torch.nn.Linear(4, 2)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for _ in range(3):\n"
        "    m(torch.randn(8, 4)).sum().backward(); opt.step(); opt.zero_grad()\n"
    )
    events = tmp_path / "job.events"
    done = python(tmp_path, code, hook_environment({}, events, 0))
    assert done.returncode == 0, done.stderr
    assert events.read_text().count("optimizer-step") == 1
    seen = ProbeEvents(events).poll()
    assert seen.trained_step and not seen.train_started  # a step, and no DataLoader the probe could bound
