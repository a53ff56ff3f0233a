"""What the study prints: a live progress line while a pair runs, and the table of pair verdicts."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

from gpupair_search.launcher.monitor import Sample
from gpupair_search.launcher.spec import PairSpec, StudyKind
from gpupair_search.search.engine.interference import PairInterference
from gpupair_search.search.policy.planner import PairPlan
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.views.labels import batches, short_key
from gpupair_search.search.views.matrix_view import matrix_text, pair_grid


class Progress:
    """Live line: trial, pair, phase, pair memory against the limit, utilisation, ETA."""

    def __init__(
        self, total_pairs: int, safe_limit_mib: float, simulated: bool = False, stream: TextIO = sys.stderr
    ) -> None:
        self.total, self.limit, self.simulated, self.stream = total_pairs, safe_limit_mib, simulated, stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.current = ""
        self.trial_started = time.monotonic()
        self.remaining = 0
        self._last_plain = 0.0
        self._started: dict[str, float] = {}

    def begin(self, trial_number: int, pair_key: str, config, remaining: int) -> str:
        """Start a trial's line; returns its label (packed trials run in threads: each ends its own)."""
        label = self.current = f"trial {trial_number} {short_key(pair_key)} bs {batches(config)}"
        self.trial_started = self._started[label] = time.monotonic()
        self.remaining = remaining
        return label

    def eta(self) -> str:
        if not self.durations:
            return "ETA ?"
        left = sum(self.durations) / len(self.durations) * self.remaining
        return f"ETA {int(left // 60)}m{int(left % 60):02d}s"

    def update(self, phase: str, sample: Sample | None) -> None:
        mem = sum(sample.job_mib.values()) if sample else 0.0
        util = sample.device.utilization_pct if sample else None
        bar = _bar(mem / self.limit if self.limit else 0.0)
        line = (
            f"[{self.current}] {phase} | pair {mem:,.0f}/{self.limit:,.0f} MiB {bar} | "
            f"util {util if util is not None else '-'}% | {self.eta()}"
        )
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
            self.stream.flush()
        elif time.monotonic() - self._last_plain >= 10:
            self._last_plain = time.monotonic()
            print(line, file=self.stream, flush=True)

    def end(self, verdict_line: str, label: str | None = None) -> None:
        label = label or self.current
        self.durations.append(time.monotonic() - self._started.pop(label, self.trial_started))
        prefix = "\r" + " " * 160 + "\r" if self.tty else ""
        kind = " (simulated)" if self.simulated else ""
        print(f"{prefix}[{label}]{kind} {verdict_line}", file=self.stream, flush=True)


def trial_words(outcome, peak_mib: float, safe_limit_mib: float) -> str:
    """The verdict a trial line leads with: what the peak means for the pair, not how its process exited. A pair
    that ran to the end over the safe limit is "over the safe limit", never "ok"."""
    if outcome.is_oom:
        return f"does not fit ({outcome.value})"
    if not outcome.is_memory_verdict:
        return f"failed ({outcome.value})"
    if peak_mib > safe_limit_mib:
        return f"over the safe limit ({peak_mib - safe_limit_mib:,.0f} MiB above {safe_limit_mib:,.0f} MiB)"
    return f"fits ({safe_limit_mib - peak_mib:,.0f} MiB under the {safe_limit_mib:,.0f} MiB safe limit)"


def _bar(fraction: float, width: int = 10) -> str:
    filled = min(width, int(round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]" + ("!" if fraction > 1 else "")


KIND_WORDS = {
    StudyKind.GPU: "",
    StudyKind.CPU: "; CPU: host memory (RSS; a forked worker counts its own pages) against a budget, not GPU memory",
    StudyKind.SIMULATED: "; SIMULATED numbers",
}


def budget_words(kind: StudyKind, card_mib: float, safe_limit_mib: float) -> str:
    """What the study fits against, in its own terms: a card, a host-memory budget, or a simulated card."""
    if kind == StudyKind.CPU:
        return f"host-memory budget {card_mib:,.0f} MiB (CPU, not a GPU), safe limit {safe_limit_mib:,.0f} MiB"
    prefix = "SIMULATED card" if kind == StudyKind.SIMULATED else "card"
    return f"{prefix} {card_mib:,.0f} MiB, safe limit {safe_limit_mib:,.0f} MiB"


def measured_trials(plans: list[PairPlan]) -> int:
    """The trial count every view prints: trials that measured something."""
    return sum(p.trials_spent for p in plans)


def interference_lines(items: list[PairInterference]) -> list[str]:
    """Per pair trial: its slowdowns, energy per sample and paired against sequential, or why it has none."""
    if not items:
        return []
    lines = ["interference (foreground's steady-state window, against solo baselines):"]
    for p in items:
        lines.append(
            f"  trial {p.trial} {p.pair_key.split(':')[0]} batch {batches((p.fg_batch, p.bg_batch))}: {p.summary()}"
        )
    return lines


def verdict_table(plans: list[PairPlan], safe_limit_mib: float, kind: StudyKind = StudyKind.GPU) -> str:
    head = [
        "group",
        "foreground + background",
        "verdict",
        "peak MiB",
        "margin MiB",
        "batch (orig -> safe)",
        "trials",
        "measured",
    ]
    rows = []
    for plan in plans:
        peak = plan.recommended_peak_mib
        if peak is None:
            measured = [t.peak_mib for t in plan.trials if t.peak_mib is not None and t.config == plan.original]
            peak = measured[-1] if measured else None
        margin = f"{safe_limit_mib - peak:,.0f}" if peak is not None else "-"
        jobs = plan.pair.foreground.key + (" + " + plan.pair.background.key if plan.pair.background else "")
        verdict = plan.verdict.value + (f" ({plan.detail})" if plan.detail and plan.verdict is Verdict.FAILED else "")
        rows.append(
            [
                str(plan.pair.group),
                jobs,
                verdict[:60],
                f"{peak:,.0f}" if peak is not None else "-",
                margin,
                f"{batches(plan.original)} -> {batches(plan.recommended)}",
                str(plan.trials_spent),
                plan.measured_as,
            ]
        )
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    total = measured_trials(plans)
    title = f"safe limit {safe_limit_mib:,.0f} MiB; {total} trials" + KIND_WORDS[kind]
    return title + "\n" + "\n".join(lines)


def verdicts_text(plans: list[PairPlan], safe_limit_mib: float, kind: StudyKind = StudyKind.GPU) -> str:
    """What ``run`` and ``status`` print at the end: the verdict table, what its measurements warned of, and for
    a study whose pairs form a foreground × background matrix (the matrix study), that matrix at a glance."""
    grid = pair_grid(plans)
    table = "\n".join([verdict_table(plans, safe_limit_mib, kind), *caveat_lines(plans)])
    return table if grid is None else f"{table}\n\n{matrix_text(grid)}"


def measurement_warnings(warnings: Iterable[str], pair: PairSpec) -> list[str]:
    """What a measurement of ``pair`` warned of: its ``warnings`` less the settings file's own for the pair, which
    were shown when the file was read."""
    return [w for w in warnings if w not in pair.warnings]


def caveats(plan: PairPlan) -> list[str]:
    """What the pair's measured trials warned of, once each: a job that exited 0 after a traceback, a probe that
    did not reach the evaluation pass."""
    found: list[str] = []
    for trial in plan.trials:
        measured = trial.record.measured
        for warning in measurement_warnings(measured.warnings, plan.pair) if measured is not None else ():
            if warning not in found:
                found.append(warning)
    return found


def caveat_lines(plans: list[PairPlan]) -> list[str]:
    """Under the verdict table: each pair's caveats, so that a verdict is never read without them."""
    lines = [f"  g{plan.pair.group:02d}: {warning}" for plan in plans for warning in caveats(plan)]
    return ["warnings of the measurements above:", *lines] if lines else []


def time_and_probe_line(views) -> str:
    """One line on how the measured trials spent their time and how their jobs were probed: the median time
    outside the jobs' own work per trial (waits, start-up on the runner's side, stopping, bookkeeping), and
    how many trials got each probe (``probe: plateau`` ones did not reach their evaluation pass). "" when no
    trial recorded either (studies stored before the figures existed, simulated ones)."""
    from statistics import median

    measured = [v.record.measured for v in views if v.measured and v.record.measured is not None]
    outside = [m.outside_jobs_s for m in measured if m.outside_jobs_s is not None]
    labels: dict[str, int] = {}
    for m in measured:
        label = m.probe_label
        if label:
            labels[label] = labels.get(label, 0) + 1
    parts = []
    if outside:
        parts.append(
            f"time outside the jobs: median {median(outside):.2f} s per trial (max {max(outside):.2f} s, "
            f"{len(outside)} trials)"
        )
    if labels:
        parts.append("; ".join(f"{n} × {label}" for label, n in sorted(labels.items(), key=lambda kv: -kv[1])))
    return ". ".join(parts)
