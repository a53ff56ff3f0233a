"""What a study *is*, fixed when it is created: the card, the limit, the search, the pairs and the input files.

A study's trials only mean something against the definition they were measured under. So the definition is
written once, as one user attribute of the study, and every later run compares its own against it before
anything starts: a run with another card, policy or edited settings file stops and says what differs,
instead of judging old peaks against a new limit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import optuna

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.registry import DEFAULT_PROBE_STEPS
from gpupair_search.launcher.spec import JobConfig, PairSpec, StudyKind
from gpupair_search.search.engine.baselines import DEFAULT_BASELINES, DEFAULT_MIN_WINDOW_S
from gpupair_search.search.policy.batch_grid import STORED_BEFORE_GRIDS, batch_grid
from gpupair_search.search.policy.confirmation import Confirm
from gpupair_search.search.policy.planner import ExtensionOptions

DEFINITION_KEY = "definition"
STORED_BEFORE_PROBE_STEPS = 30
#: (baselines, min_window_s) a study stored without them is resumed with, by device kind: the defaults of the time,
#: when GPU studies measured slowdown and energy (they are then queued, as they always were for such a study).
STORED_BEFORE_BASELINES = {StudyKind.GPU: (True, 2.0), StudyKind.CPU: (False, 0.0), StudyKind.SIMULATED: (False, 0.0)}


class DefinitionChanged(UserError):
    """A run whose definition differs from the stored one: nothing was started or written."""


@dataclass(frozen=True)
class FixedDefinition:
    name: str
    device_kind: StudyKind
    card_mib: float  # the card size; for a CPU study, the host-memory budget
    safe_limit_mib: float
    extend: bool
    policy: str
    floor: int
    probe: bool
    settings_file: str
    settings_sha256: str
    models_file: str
    models_sha256: str
    #: solo baselines of each job (search/engine/baselines.py). None in a run's definition: not asked for, so a stored
    #: study goes on with its own, and a new one gets ``baselines_default``
    baselines: bool | None = None
    #: probes: the foreground trains at least this many seconds (launcher RunOptions.min_window_s); None as above
    min_window_s: float | None = None
    #: per pair: key, group, note, foreground, background, original batch sizes [fg, bg]
    pairs: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: packed results this close (a fraction) to the card or the limit are confirmed alone (search/policy/confirmation.py);
    #: studies from before packing read as the default, which is what confirmation would have used
    confirm_margin: float = 0.10
    #: the extension's candidate batch sizes (--batch-grid); a study stored without one ran the unit search
    batch_grid: str = STORED_BEFORE_GRIDS
    #: probes: built-ins' --max-steps (launcher RunOptions.probe_steps); a study stored without one ran 30. None in
    #: a run's definition: not asked for, so a stored study goes on with its own, and a new one gets the default
    probe_steps: int | None = STORED_BEFORE_PROBE_STEPS
    #: what packed trials are confirmed alone (--confirm); a study stored without one confirmed its recommendations
    confirm: str = Confirm.RECOMMENDED.value
    #: what a new study gets when the run leaves probe_steps to the default (the named study's, else the tool's)
    probe_steps_default: int = DEFAULT_PROBE_STEPS
    #: what a new study gets when the run leaves baselines and min_window_s to the default (as probe_steps_default)
    baselines_default: bool = DEFAULT_BASELINES
    min_window_s_default: float = DEFAULT_MIN_WINDOW_S

    def extension(self) -> ExtensionOptions:
        """The search this study runs, as the planner takes it."""
        return ExtensionOptions(
            enabled=self.extend,
            policy=self.policy,
            floor=self.floor,
            confirm_margin=self.confirm_margin,
            grid=batch_grid(self.batch_grid),
            confirm=Confirm(self.confirm),
        )

    def for_new_study(self) -> FixedDefinition:
        """The definition to store: what the run left to the default, filled in."""
        defaults = {
            "probe_steps": self.probe_steps_default,
            "baselines": self.baselines_default,
            "min_window_s": self.min_window_s_default,
        }
        return replace(self, **{name: value for name, value in defaults.items() if getattr(self, name) is None})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["pairs"] = list(self.pairs)
        out["device_kind"] = StudyKind(self.device_kind).value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FixedDefinition:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["pairs"] = tuple(values.get("pairs", ()))
        values["device_kind"] = kind = StudyKind(values.get("device_kind", StudyKind.GPU.value))
        # a study from before baselines were kept is resumed with its kind's default of the time (they are then
        # queued), whatever the default is now
        baselines, window = STORED_BEFORE_BASELINES[kind]
        values.setdefault("baselines", baselines)
        values.setdefault("min_window_s", window)
        return cls(**values)

    def differences(self, now: FixedDefinition) -> list[str]:
        """One line per difference, stored value first: what a user must put back to continue this study."""
        lines = []
        for f in fields(self):
            if f.name in _NOT_COMPARED:
                continue
            stored, current = getattr(self, f.name), getattr(now, f.name)
            if current is None and f.name in _AS_STORED:
                continue
            if stored != current:
                lines.append(f"{f.name}: stored {_show(stored)}, now {_show(current)}")
        stored_pairs = {p["key"]: p for p in self.pairs}
        current_pairs = {p["key"]: p for p in now.pairs}
        for key in sorted(stored_pairs.keys() - current_pairs.keys()):
            lines.append(f"pair {key}: in the study, not in the settings now")
        for key in sorted(current_pairs.keys() - stored_pairs.keys()):
            lines.append(f"pair {key}: in the settings now, not in the study")
        for key in sorted(stored_pairs.keys() & current_pairs.keys()):
            changed = [
                k
                for k in stored_pairs[key] | current_pairs[key]
                if k not in _PAIR_NOT_COMPARED and stored_pairs[key].get(k) != current_pairs[key].get(k)
            ]
            if changed:
                lines.append(f"pair {key}: {', '.join(changed)} changed")
        if not any(line.startswith("pair ") for line in lines):
            # the pairs read the same: an edited comment, description or note changes no measurement
            lines = [line for line in lines if not line.startswith("settings_sha256:")]
        return lines

    def check_same(self, now: FixedDefinition) -> None:
        """Raise :class:`DefinitionChanged`, listing each difference and the two ways on."""
        diff = self.differences(now)
        if diff:
            raise DefinitionChanged(
                f"study '{self.name}' was created with another definition; nothing was started or changed:\n"
                + "\n".join(f"  - {line}" for line in diff)
                + "\n  fix: run with the flags and files it was created with, or give this run its own study "
                "name (--name NEW_NAME)"
            )

    def job_pairs(self) -> list[PairSpec]:
        """The pairs as stored, for reading a study without its (possibly edited) settings file."""
        return [
            PairSpec(
                p["group"],
                _job(p["foreground"]),
                _job(p["background"]) if p["background"] else None,
                note=p.get("note", ""),
                source="stored study definition",
                warnings=tuple(p.get("warnings", ())),
                repeats=int(p.get("repeats", 1)),
                repeated_at=tuple(p.get("repeated_at", ())),
                worst_case=p.get("worst_case", {}),
            )
            for p in self.pairs
        ]

    def originals(self) -> dict[str, tuple[int | None, int | None]]:
        return {p["key"]: tuple(p["original"]) for p in self.pairs}  # type: ignore[misc]


def pair_record(pair: PairSpec, original: tuple[int | None, int | None]) -> dict[str, Any]:
    return {
        "key": pair.key,
        "group": pair.group,
        "note": pair.note,
        "foreground": pair.foreground.to_json(),
        "background": pair.background.to_json() if pair.background else None,
        "original": list(original),
        "repeats": pair.repeats,
        "repeated_at": list(pair.repeated_at),
        "warnings": list(pair.warnings),
        "worst_case": json.loads(json.dumps({role: dict(case) for role, case in pair.worst_case.items()})),
    }


# Where the files are (a moved settings file is the same study: its digest says whether it changed), and
# what is derived from the rest (warnings, the places repeats came from), are kept but not compared.
_NOT_COMPARED = {
    "name",
    "pairs",
    "settings_file",
    "models_file",
    "probe_steps_default",
    "baselines_default",
    "min_window_s_default",
}
_PAIR_NOT_COMPARED = {"warnings", "repeated_at"}
#: Left to the default by a run (None), these go on as the stored study has them: a changed default must not
#: stop a study that was started under the old one.
_AS_STORED = {"probe_steps", "baselines", "min_window_s"}


def stored_definition(study: optuna.Study) -> FixedDefinition | None:
    """The definition ``study`` was created with; None for a study from before definitions were kept."""
    data = study.user_attrs.get(DEFINITION_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return FixedDefinition.from_json(data)
    except (TypeError, KeyError) as exc:
        raise UserError(
            f"study '{study.study_name}' has a definition this version cannot read ({exc}); "
            "read it with the version that wrote it"
        ) from None


def has_definition(study: optuna.Study) -> bool:
    return DEFINITION_KEY in study.user_attrs


def options_before_definitions(study: optuna.Study) -> dict[str, Any]:
    """What a study from before definitions were kept holds of its options: the attributes it was created with
    (card, limit, policy, floor)."""
    return dict(study.user_attrs)


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _job(data: dict[str, Any]) -> JobConfig:
    return JobConfig(data["repo"], data["model"], dict(data.get("hyperparameters", {})))


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}".rstrip("0").rstrip(".")
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"  # a digest: the file's content changed
    return repr(value)
