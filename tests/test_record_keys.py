"""Trial attributes are read through the typed trial record only (search/record/trial_record.py).

A view that reads ``attrs.get("window")`` breaks silently when the record renames or nests a field; one that reads
``record.measured.window`` breaks at once, where the change is made. So product code reads no trial attribute by
string key outside the record's module, and Optuna's private ``fixed_params`` outside its adapter.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gpupair_search.search.record.trial_record import Closing, Measured, Queued

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("launcher", "search", "studies")
RECORD_MODULE = Path("search/record/trial_record.py")
ADAPTER = Path("search/record/optuna_adapter.py")
#: the study's stored definition is a study attribute, read where the definition is defined
DEFINITION_MODULE = Path("search/engine/fixed_definition.py")

#: words that name a trial attribute and also a field of the user's settings file, which export writes and the
#: launcher reads (``entry.get("foreground")``): a read of these by name is not told apart from a settings read
SETTINGS_WORDS = {"foreground", "background", "note", "group", "warnings", "device", "performance_metrics", "repeats"}
#: every other name a trial attribute is stored under, from the record itself: a field added there is guarded too
TRIAL_KEYS = sorted({f.name for cls in (Queued, Measured, Closing) for f in dataclasses.fields(cls)} - SETTINGS_WORDS)
_KEYS = "|".join(map(re.escape, TRIAL_KEYS))
RAW_ATTRS = [
    re.compile(r"\battrs\s*(\.get\(|\[[^]]*\](?!\s*=[^=]))"),  # v.attrs.get(...), attrs["..."], not a write
    re.compile(r"\buser_attrs\b(?!\s*=)"),  # any use of a trial's (or study's) raw user attributes
]
#: x.get("window"), x["outcome"] (not a write ``x["outcome"] = ...``): a record field read by name, in the code that
#: reads trials (the launcher cannot: it imports nothing from search)
FIELD_BY_NAME = re.compile(rf"""(\.get\(\s*["']({_KEYS})["']|\[\s*["']({_KEYS})["']\s*\](?!\s*=[^=]))""")
FIXED_PARAMS = re.compile(r"fixed_params[\"']")


def offending_lines(root: Path) -> list[str]:
    """``path:line: text`` of every string-key read of trial attributes outside the modules allowed to."""
    found = []
    for folder in PRODUCT:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root)
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                code = line.split("#", 1)[0]
                allowed = relative in (RECORD_MODULE, ADAPTER, DEFINITION_MODULE)
                record_read = not allowed and (
                    any(p.search(code) for p in RAW_ATTRS) or (folder != "launcher" and FIELD_BY_NAME.search(code))
                )
                private_read = relative != ADAPTER and FIXED_PARAMS.search(code)
                if record_read or private_read:
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_product_code_reads_trial_attributes_by_string_key():
    offending = offending_lines(ROOT)
    assert not offending, "read these through TrialRecord (search/record/trial_record.py) instead:\n" + "\n".join(
        offending
    )


def test_the_guard_catches_each_way_of_reading_by_key(tmp_path):
    """The guard is real: each pattern a view could use is reported, in any product folder."""
    reads = {
        "search/view_a.py": 'window = v.attrs.get("window") or {}\n',
        "search/view_b.py": 'phase = t.user_attrs["phase"]\n',
        "studies/view_c.py": 'reason = record_dict.get("fail_reason", "")\n',
        "search/view_e.py": 'mode = measured["measurement"]["mode"]\n',
        "search/writes.py": 'attrs_out["outcome"] = outcome.value\n',
        "launcher/view_d.py": 'params = t.system_attrs.get("fixed_params", t.params)\n',
        "search/fine.py": 'window = v.record.measured.window  # reads "window" by name only in a comment\n',
    }
    for name, text in reads.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    found = {line.split(":")[0] for line in offending_lines(tmp_path)}
    assert found == {
        "search/view_a.py",
        "search/view_b.py",
        "studies/view_c.py",
        "launcher/view_d.py",
        "search/view_e.py",
    }


def test_every_record_field_is_guarded():
    """A field added to the record is a key the guard knows, with no list to update."""
    assert {"window", "outcome", "phase", "fail_reason", "measurement", "predicted_peak_mib"} <= set(TRIAL_KEYS)
    assert all(f.name in TRIAL_KEYS or f.name in SETTINGS_WORDS for f in dataclasses.fields(Measured))
