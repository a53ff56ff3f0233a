"""Packing: several trials at once on one device, then, alone on the card, what a verdict must rest on.

Real subprocesses on the CPU device (its host-memory budget stands in for the card), and the simulated device.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import optuna
from optuna.trial import TrialState

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.pair_runner import RunOptions
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.policy.confirmation import ConfirmationRule, evidence
from gpupair_search.search.record.trial_record import CONFIRM_PHASE, PACKED, SERIAL, Queued, TrialView
from tests.conftest import CPU_CARD_ARGS, FIXTURES, cli_env, pids_alive, read_pids, wait_until

CPU_STUDY = ["--settings", str(FIXTURES / "study_settings.json"), *CPU_CARD_ARGS]


def cli(*args: str, results: Path) -> list[str]:
    return [sys.executable, "-m", "gpupair_search.search.cli.app", *args, "--results", str(results)]


def run(*args: str, results: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cli(*args, results=results), env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def verdicts(stdout: str) -> dict[str, tuple[str, str]]:
    """group -> (verdict, batch column) from the verdict table."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            arrow = cells.index("->")
            rows[cells[0]] = (
                next(c for c in cells if c.startswith(("fits", "failed", "does_", "infeasible"))),
                " ".join(cells[arrow - 1 : arrow + 2]),
            )
    return rows


def trials(results: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{results / 'gpupair.db'}").get_trials()


def most_at_once(ts: list[optuna.trial.FrozenTrial]) -> int:
    events = sorted(
        [(t.datetime_start, 1) for t in ts if t.datetime_start]
        + [(t.datetime_complete, -1) for t in ts if t.datetime_complete],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_a_packed_cpu_study_gives_the_serial_verdicts_and_confirms_every_recommendation(tmp_path):
    serial = run("run", *CPU_STUDY, "--parallel", "1", results=tmp_path / "serial")
    packed = run("run", *CPU_STUDY, "--parallel", "3", results=tmp_path / "packed")
    assert verdicts(packed.stdout) == verdicts(serial.stdout)
    assert "packed: up to 3 trials at once" in packed.stderr
    ts = trials(tmp_path / "packed", "fixture_study-cpu")
    modes = collections.Counter(t.user_attrs["measurement"]["mode"] for t in ts if "outcome" in t.user_attrs)
    assert modes[PACKED] >= 3 and modes[SERIAL] >= 2
    assert most_at_once([t for t in ts if t.user_attrs.get("measurement", {}).get("mode") == PACKED]) >= 2
    # a packed trial has no energy figure, and says why; a serial one ran on the budgeted device
    packed_trial = next(t for t in ts if t.user_attrs.get("measurement", {}).get("mode") == PACKED)
    assert packed_trial.user_attrs["energy"]["gpu_energy_note"].startswith("packed: no energy figure")
    assert packed_trial.user_attrs["measurement"]["card_mib"] is None  # measured without the limit
    serial_trial = next(t for t in ts if t.user_attrs.get("measurement", {}).get("mode") == SERIAL)
    assert serial_trial.user_attrs["measurement"]["card_mib"] == 400.0
    # every recommendation rests on a serial trial of that configuration
    for group, (verdict, batch) in verdicts(packed.stdout).items():
        if not verdict.startswith("fits"):
            continue
        safe = batch.split(" -> ")[1]
        config = [
            t
            for t in ts
            if t.params["pair"].startswith(f"g{int(group):02d}")
            and f"{t.params.get('fg_batch_size', '·')}/{t.params.get('bg_batch_size', '·')}" == safe
        ]
        assert any(
            t.user_attrs.get("measurement", {}).get("mode") == SERIAL and t.state is TrialState.COMPLETE for t in config
        ), (group, safe)


GROWING = {
    "experiment_name": "grows",
    "experiments": [
        {
            "mode": "parallel",
            "foreground": {
                "mode": "default",
                "repo": "fixture",
                "model": "grows",
                "hyperparameters": {"seconds": 0.5, "alloc_mib": 60},
            },
            "background": {"repo": "fixture", "model": "ok", "hyperparameters": {"seconds": 30, "alloc_mib": 40}},
            "note": "Group 1: fits when first run, needs 120 MiB more on every later run",
        },
    ],
}


def _growing_study(tmp_path: Path) -> list[str]:
    models = json.loads((FIXTURES / "models.json").read_text())
    models["models"]["fixture"]["models"].append("grows")
    (tmp_path / "models.json").write_text(json.dumps(models))
    study = json.loads(json.dumps(GROWING))
    study["experiments"][0]["foreground"]["hyperparameters"]["value"] = str(tmp_path / "runs.txt")
    (tmp_path / "grows.json").write_text(json.dumps(study))
    return [
        "--settings",
        str(tmp_path / "grows.json"),
        "--models",
        str(tmp_path / "models.json"),
        "--repos-root",
        str(FIXTURES),
        "--device",
        "cpu",
        "--gpu-memory",
        "400MiB",
        "--safe-limit",
        "200MiB",
        "--no-extend",
    ]


def test_a_confirmation_alone_on_the_card_overturns_a_packed_verdict(tmp_path):
    done = run("run", *_growing_study(tmp_path), "--parallel", "2", results=tmp_path / "r")
    ts = [t for t in trials(tmp_path / "r", "grows-cpu") if "outcome" in t.user_attrs]
    packed = [t for t in ts if t.user_attrs["measurement"]["mode"] == PACKED]
    confirm = [t for t in ts if t.user_attrs.get("phase") == CONFIRM_PHASE]
    assert len(packed) == 1 and packed[0].constraints["over_safe_limit_mib"] < 0  # packed: it fit
    assert len(confirm) == 1 and confirm[0].user_attrs["measurement"]["mode"] == SERIAL
    assert confirm[0].constraints["over_safe_limit_mib"] > 0  # alone on the card it did not
    assert verdicts(done.stdout)["1"][0] == "infeasible"
    status = run("status", *_growing_study(tmp_path)[:6], results=tmp_path / "r")
    assert "infeasible" in status.stdout and "fits " not in status.stdout


def _view(mode: str, peak: float, config=(8, 8), state=TrialState.COMPLETE, number=0) -> TrialView:
    attrs = {"outcome": "ok", "measurement": {"mode": mode}, "fail_reason": "x"}
    return TrialView.of(
        number,
        state,
        "g01",
        config[0],
        config[1],
        state is TrialState.COMPLETE and peak <= 250,
        {**attrs, "peak_mib": peak},
    )


def test_only_packed_results_clearly_away_from_the_card_and_the_limit_are_trusted():
    rule = ConfirmationRule(safe_limit_mib=1000, card_mib=1200, margin=0.10)
    assert rule.trusted(_view(PACKED, 500))
    assert rule.trusted(_view(PACKED, 2000))
    assert not rule.trusted(_view(PACKED, 950))  # within 10% of the limit
    assert not rule.trusted(_view(PACKED, 1080))  # within 10% of the limit, and of the card
    assert not rule.trusted(_view(PACKED, 1300))  # within 10% of the card
    assert not rule.trusted(_view(PACKED, 100, state=TrialState.FAIL))  # a packed crash is re-run alone
    assert rule.trusted(_view(SERIAL, 1000))  # a serial one always counts


def test_a_serial_measurement_replaces_the_packed_one_of_its_configuration():
    rule = ConfirmationRule(safe_limit_mib=1000, card_mib=1200)
    packed, serial = _view(PACKED, 500, number=0), _view(SERIAL, 990, number=1)
    known = evidence([packed, serial], rule)
    assert [v.number for v in known.usable] == [1]
    borderline = evidence([_view(PACKED, 990)], rule)
    assert not borderline.usable and borderline.needs_serial((8, 8))
    clear = evidence([_view(PACKED, 100)], rule)
    assert clear.packed_only((8, 8)) and not clear.packed_only((4, 4))


def test_packed_pairs_share_one_sampler_and_each_gets_its_own_jobs_memory(tmp_path, fixture_registry):
    executor = DeviceExecutor(fixture_registry, CpuDevice(None), RunOptions(timeout_s=60), tmp_path, packed=True)
    allocs = [60.0, 120.0, 180.0]
    pairs = [
        PairSpec(
            i + 1,
            JobConfig("fixture", "ok", {"seconds": 2.0, "alloc_mib": mib}),
            JobConfig("fixture", "ok", {"seconds": 30, "alloc_mib": mib / 2}),
        )
        for i, mib in enumerate(allocs)
    ]
    results: dict[int, object] = {}
    samplers: list[int] = []

    def one(pair: PairSpec) -> None:
        results[pair.group] = executor.run(pair, pair.group)

    threads = [threading.Thread(target=one, args=(p,)) for p in pairs]
    for t in threads:
        t.start()
    assert wait_until(lambda: executor.sampler.attached == 3, timeout=60)  # all three pairs are being sampled
    samplers.append(sum(1 for t in threading.enumerate() if t.name == "gpupair-sampler"))
    for t in threads:
        t.join(timeout=120)
    assert samplers == [1]
    for pair, mib in zip(pairs, allocs):
        memory = results[pair.group].memory
        assert mib <= memory.foreground_peak_mib < mib + 60, (mib, memory)  # its own job, not another pair's
        assert mib / 2 <= memory.background_peak_mib < mib / 2 + 60, (mib, memory)
        assert results[pair.group].measurement["mode"] == PACKED


def test_a_packed_pair_starts_its_foreground_without_waiting_for_the_background(tmp_path, fixture_registry):
    """Without the card's limit the order changes no peak, so a packed trial does not wait for its background to
    be ready; a serial one, on the card, does (an OOM there depends on who allocated first)."""
    pair = PairSpec(
        1,
        JobConfig("fixture", "ok", {"seconds": 1.0, "alloc_mib": 40.0}),
        JobConfig("fixture", "ok", {"seconds": 30, "alloc_mib": 60.0}),
    )
    options = RunOptions(timeout_s=60)
    packed = DeviceExecutor(fixture_registry, CpuDevice(None), options, tmp_path / "packed", packed=True).run(pair, 1)
    serial = DeviceExecutor(fixture_registry, CpuDevice(None), options, tmp_path / "serial").run(pair, 1)

    assert packed.outcome.value == serial.outcome.value == "ok"
    assert packed.measurement["jobs_started"] == "together" and "background_ready" not in packed.phase_seconds
    assert packed.foreground_window[0] < options.background_settle_s <= serial.foreground_window[0]
    for result in (packed, serial):  # both jobs measured either way
        assert result.memory.foreground_peak_mib >= 40 and result.memory.background_peak_mib >= 60


def test_sigkill_of_a_packing_runner_leaves_no_process_and_loses_no_trial(tmp_path):
    results = tmp_path / "results"
    pidfile = tmp_path / "pids.txt"
    settings = json.loads((FIXTURES / "study_settings.json").read_text())
    for entry in settings["experiments"]:
        for role in ("foreground", "background"):
            entry[role]["hyperparameters"]["pidfile"] = str(pidfile)
            if role == "foreground":
                entry[role]["hyperparameters"]["seconds"] = 5
    (tmp_path / "s.json").write_text(json.dumps(settings))
    args = ["--settings", str(tmp_path / "s.json"), *CPU_STUDY[2:], "--parallel", "3"]
    runner = subprocess.Popen(
        cli("run", *args, results=results), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def running() -> int:
        try:
            return sum(t.state is TrialState.RUNNING for t in trials(results, "fixture_study-cpu"))
        except Exception:  # noqa: BLE001 - the storage may be mid-write by the runner; ask again
            return 0

    assert wait_until(lambda: running() >= 2 and len(read_pids(pidfile)) >= 4, timeout=120)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    assert wait_until(lambda: not pids_alive(read_pids(pidfile)), timeout=30), pids_alive(read_pids(pidfile))
    again = run("run", *args, results=results)
    ts = trials(results, "fixture_study-cpu")
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    measured = collections.Counter(
        (
            t.params["pair"],
            t.params.get("fg_batch_size"),
            t.params.get("bg_batch_size"),
            t.user_attrs["measurement"]["mode"],
        )
        for t in ts
        if "outcome" in t.user_attrs
    )
    assert max(measured.values()) == 1  # no configuration measured twice the same way
    assert set(verdicts(again.stdout)) == {"1", "2", "3"}
    assert not pids_alive(read_pids(pidfile))


def test_a_packed_simulated_study_gives_the_serial_verdicts(tmp_path):
    """On the sim device too. Where every recommendation is confirmed (the default), a trial the memory model
    predicts clearly would be measured alone anyway, so none is packed first: all 12 groups are predicted (g11's
    CPU background from the profile's word). Under near-limits the clear fits run packed, labelled so."""
    sim = ["--study", "feasibility", "--device", "sim"]  # memory verdicts only, the named study's default
    serial = run("run", *sim, "--parallel", "1", results=tmp_path / "serial")
    for confirm, packed_trials in (("recommended", 0), ("near-limits", 1)):
        packed = run("run", *sim, "--parallel", "4", "--confirm", confirm, results=tmp_path / confirm)
        assert verdicts(packed.stdout) == verdicts(serial.stdout)
        ts = [t for t in trials(tmp_path / confirm, "feasibility-simulated") if "outcome" in t.user_attrs]
        modes = collections.Counter(t.user_attrs["measurement"]["mode"] for t in ts)
        assert (modes[PACKED] >= 1) == bool(packed_trials), modes
        assert "SIMULATED" in packed.stdout
        assert "interference: not measured (memory only" in packed.stdout and "no energy figure" not in packed.stdout
    assert modes[SERIAL] >= 3  # near-limits: what lies near the limit is still measured alone


# -- how many at once -----------------------------------------------------------------------------------
class _Gpu:
    """What ``packing_slots`` reads of a GPU: its kind, its total and its used memory (an H200's figures)."""

    study_kind, simulated, total_mib = "gpu", False, 143_771.0

    def __init__(self, used_mib: float) -> None:
        self.used_mib = used_mib

    def reading(self):
        from gpupair_search.launcher.devices.base import DeviceReading

        return DeviceReading(used_mib=self.used_mib)


def test_auto_packs_as_many_cards_as_fit_with_a_core_for_each_job():
    from gpupair_search.search.engine.packing import packing_slots

    card = 8192.0
    assert packing_slots(_Gpu(0.0), card, cores=16) == 7  # 17 cards fit; 14 spare cores, 2 jobs a pair
    assert packing_slots(_Gpu(0.0), card, cores=64) == 16  # the cap
    assert packing_slots(_Gpu(143_771.0 - 3 * card), card, cores=64) == 3  # what is free, not the total
    assert packing_slots(_Gpu(0.0), card, cores=3) == 1  # never 0
    assert packing_slots(CpuDevice(400.0), 400.0, cores=16) == 1  # only a GPU packs by itself


def test_near_limits_lets_a_clear_packed_fit_stand_and_still_confirms_one_near_the_limit():
    """--confirm recommended measures every recommendation alone; near-limits (the matrix's) trusts a packed fit
    clearly under the limit, labelled packed, but never one near it."""
    from gpupair_search.search.policy.confirmation import Confirm
    from gpupair_search.search.policy.planner import ExtensionOptions, plan_pair
    from gpupair_search.search.policy.verdict import Verdict

    pair = PairSpec(1, JobConfig("fixture", "ok", {}), JobConfig("fixture", "ok", {}))
    limit, card = 250.0, 400.0
    clear, near = [_view(PACKED, 100)], [_view(PACKED, 240)]  # 240 is within 10% of the 250 MiB limit

    def plan(views, confirm):
        return plan_pair(pair, (8, 8), views, {}, limit, ExtensionOptions(confirm=confirm), card)

    strict = plan(clear, Confirm.RECOMMENDED)
    assert strict.verdict is Verdict.CONFIRMING and strict.next_config == (8, 8) and strict.next_confirms
    survey = plan(clear, Confirm.NEAR_LIMITS)
    assert survey.verdict is Verdict.FITS and survey.recommended == (8, 8) and survey.measured_as == "packed"
    for confirm in Confirm:
        assert plan(near, confirm).verdict is Verdict.CONFIRMING


def test_a_trial_whose_packed_result_could_not_stand_waits_for_the_card():
    """Packing a trial the memory model predicts near the card or the safe limit would only be measured again
    alone: it waits for the serial phase. Where recommendations are confirmed, so does a clear predicted fit. A
    trial without a prediction, or clearly over both, runs packed (its packed result can stand)."""
    from types import SimpleNamespace

    from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
    from gpupair_search.search.policy.confirmation import Confirm
    from gpupair_search.search.policy.planner import ExtensionOptions

    def study(confirm: Confirm) -> FeasibilityStudy:
        settings = StudySettings("s", card_mib=400.0, safe_limit_mib=250.0, extension=ExtensionOptions(confirm=confirm))
        return FeasibilityStudy(optuna.create_study(), settings, SimpleNamespace(pairs=[]), registry=None)

    def serial(fs: FeasibilityStudy, predicted: float | None) -> bool:
        queued = optuna.trial.create_trial(
            state=TrialState.WAITING, user_attrs=Queued(predicted_peak_mib=predicted).to_attrs()
        )
        return fs.goes_serial(queued)

    survey, strict = study(Confirm.NEAR_LIMITS), study(Confirm.RECOMMENDED)
    # 240 and 270: within 10% of the 250 MiB limit; 380: within 10% of the 400 MiB card
    assert [serial(survey, p) for p in (100, 240, 270, 320, 380, 600, None)] == [
        False,
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    assert [serial(strict, p) for p in (100, 240, 270, 320, 380, 600, None)] == [
        True,
        True,
        True,
        False,
        True,
        False,
        False,
    ]
