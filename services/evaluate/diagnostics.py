"""Problems found in rule and lookup files, located as ``file:line``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alertline.errors import ConfigError


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str
    level: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.level}: {self.message}"


class RulesError(ConfigError):
    """A rule set that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in the rules:" if len(self.problems) != 1 else "invalid rules:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))
