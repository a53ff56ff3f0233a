"""User-facing errors: each names the file, the place inside it, what was expected and what to do.

They are printed by the CLI without a traceback; anything else that escapes is our bug.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupair_search.launcher.printable import printable


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    where: str  # JSON path inside the file, e.g. "experiments[10].background.hyperparameters.epochs"
    message: str
    expected: str = ""
    fix: str = ""
    #: Where the seed's runner skips the experiment that holds this (it fails on the value, or runs it 0 times):
    #: what it does, said in a warning where --lenient skips the experiment too. Empty: no such reading.
    runner_skips: str = ""

    def render(self) -> str:
        """The problem as printed: control characters of every part escaped (they may come from the file)."""
        head = f"{self.file}: {self.where}: {self.message}" if self.where else f"{self.file}: {self.message}"
        lines = [head]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(printable(line, keep_newlines=False) for line in lines)


class UserError(Exception):
    """A mistake in what the user gave us; the CLI prints it and exits non-zero, no traceback."""

    exit_code = 1

    def render(self) -> str:
        return str(self)


class ConfigError(UserError):
    """One or more problems in a settings or models file."""

    def __init__(self, problems: list[Problem], unreadable: bool = False) -> None:
        self.problems = problems
        self.exit_code = 2 if unreadable else 1
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class ResultsDirError(UserError):
    """The results directory cannot be created or written (raised by the runner and by results.py)."""
